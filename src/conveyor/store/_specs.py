"""Reading the topic and subscription specs a store holds, including those older builds wrote.

A spec is validated when the API accepts it. Its numbers gained upper bounds later (a topic's
retention of 10^16 seconds once stopped housekeeping for every topic), so a spec stored
before then may break a bound it never had to meet. Such a spec is read with each number
clamped into its field's bounds: one old value must not make the whole catalog unreadable.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from msgspec import inspect

T = TypeVar("T")


def decode_spec(spec: bytes | str, decoder: msgspec.json.Decoder[T], kind: type[T]) -> T:
    """A stored spec as ``kind``, its numbers clamped into their bounds when they break them.

    Raises:
        msgspec.ValidationError: the spec is invalid for another reason than a number out
            of its bounds.
    """
    try:
        return decoder.decode(spec)
    except msgspec.ValidationError:
        raw = msgspec.json.decode(spec)
        return msgspec.convert(_clamped(raw, inspect.type_info(kind)), kind)


def _clamped(value: object, info: inspect.Type) -> object:
    """``value`` with each number in it moved into the bounds its type gives it."""
    if isinstance(info, inspect.UnionType):
        for member in info.types:
            if not isinstance(member, inspect.NoneType):
                value = _clamped(value, member)
        return value
    if isinstance(info, inspect.StructType) and isinstance(value, dict):
        for field in info.fields:
            if field.encode_name in value:
                value[field.encode_name] = _clamped(value[field.encode_name], field.type)
        return value
    if isinstance(info, inspect.IntType | inspect.FloatType) and _is_number(value):
        number: float = value  # type: ignore[assignment]
        if info.le is not None and number > info.le:
            return info.le
        if info.ge is not None and number < info.ge:
            return info.ge
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
