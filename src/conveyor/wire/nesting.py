"""How deep a JSON document nests, measured without recursion.

Decoders recurse once per level of nesting, so a body of 100,000 ``[`` exhausts the
interpreter's recursion limit (a ``RecursionError``, not a clean refusal). Conveyor accepts
JSON nested at most :data:`MAX_NESTING` levels deep: a payload counts from its own top, any
other request body from the body's top. 128 is serde_json's default recursion limit, which
jsonschema-rs and other Rust-backed readers of the payload apply too, and is far above what
real events need.

The measure is linear and never recurses: strings are cut out (a bracket inside a string
does not nest: escapes go first, then every other piece between quotes), the brackets left
are mapped to +1/-1, and the running sum's maximum is the depth (about 8 ns per byte of
strings and 25 ns per bracket here). Two cheap bounds settle most documents first, at no
cost for a payload under 258 bytes and about 1.5 ns per byte above: a document of *n* bytes
nests at most *n* / 2 deep, and at most as deep as it has opening brackets.
"""

from __future__ import annotations

import itertools
import re
from array import array

MAX_NESTING = 128
"""The deepest nesting of objects and arrays accepted in a payload or a request body."""

_ESCAPE = re.compile(rb"\\.")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, +1, -1, -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

__all__ = ["MAX_NESTING", "nesting", "nests_deeper"]


def nesting(data: bytes) -> int:
    """How many levels of objects and arrays a valid JSON document nests (0 for a scalar)."""
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)  # an escaped quote or backslash is not a boundary
    outside = b"".join(data.split(b'"')[::2])  # between quotes: in a string
    steps = array("b", outside.translate(_STEPS, _NOT_BRACKETS))
    return max(itertools.accumulate(steps), default=0)


def nests_deeper(data: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether a valid JSON document nests deeper than ``limit`` levels."""
    if len(data) <= 2 * limit + 1:
        return False
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    return nesting(data) > limit
