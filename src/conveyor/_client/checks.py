"""Checking a request body in the client by the very rules the server decodes it with.

A value the server would refuse (a retention past ten years, a negative rate) is refused
before anything is sent, with the error the server would have answered: the same message,
``field`` and ``rule``. Publishes are left to the server, which states their limits in one
place and is on the hot path.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from conveyor.wire.envelope import from_msgspec

S = TypeVar("S", bound=msgspec.Struct)

_ENCODER = msgspec.json.Encoder()
# Invariant: one decoder per body type, built once; msgspec decoders are thread-safe.
_DECODERS: dict[type, msgspec.json.Decoder[object]] = {}


def checked(body: S) -> S:
    """``body`` as the server will read it.

    Raises:
        InvalidRequest: a value breaks a rule (its ``field`` and ``rule`` name it).

    Returns:
        The body, checked.
    """
    kind = type(body)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        decoder.decode(_ENCODER.encode(body))
    except msgspec.ValidationError as e:
        raise from_msgspec(e) from e
    return body
