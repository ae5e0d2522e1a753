"""Compatibility modes, composed from one primitive ``check(reader, writer)``.

=======================  ==================================================================
mode                     the new schema must be able to ...
=======================  ==================================================================
``NONE``                 (nothing is checked)
``BACKWARD``             read data written with the latest version: ``check(new, latest)``
``FORWARD``              write data the latest version can read: ``check(latest, new)``
``FULL``                 both of the above
``*_TRANSITIVE``         the same, against every earlier version instead of the latest
=======================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from conveyor.frontend.registry.breaking import Breaking
from conveyor.wire.registry import Compatibility

S = TypeVar("S")


def breaking_changes(
    mode: Compatibility,
    new: S,
    earlier: Sequence[S],
    check: Callable[[S, S], list[Breaking]],
) -> list[Breaking]:
    """Every reason ``new`` breaks ``mode`` against the ``earlier`` versions.

    Args:
        mode: the subject's compatibility mode.
        new: the candidate version, parsed.
        earlier: every version already registered, parsed, oldest first.
        check: the schema type's ``check(reader, writer)``.

    Returns:
        The breaking changes, against the latest version first, without duplicates; empty
        when ``new`` is compatible (always so for ``NONE`` or when there is no earlier
        version). ``old`` describes the earlier version and ``new`` the candidate, whichever
        of the two was the reader.
    """
    if mode is Compatibility.NONE or not earlier:
        return []
    against = list(reversed(earlier)) if mode.transitive else [earlier[-1]]
    found: list[Breaking] = []
    for old in against:
        if mode.backward:
            found += check(new, old)
        if mode.forward:
            found += [_swap(b) for b in check(old, new)]
    return list(dict.fromkeys(found))


def _swap(change: Breaking) -> Breaking:
    """A forward check's finding with ``old`` describing the old schema (there the writer)."""
    return msgspec.structs.replace(change, old=change.new, new=change.old)
