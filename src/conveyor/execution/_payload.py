"""Turn a pushed payload (JSON bytes) into the type a handler declares.

The decoder is chosen once, when the handler is registered:

- a ``msgspec.Struct`` subclass: a cached ``msgspec.json.Decoder`` of that type;
- a pydantic ``BaseModel`` subclass: ``Model.model_validate_json`` (pydantic is optional: it is
  never imported here, only recognised when the handler's module already imported it);
- ``dict``, ``list``, ``Any``, ``object`` or no annotation: plain JSON;
- anything else msgspec can convert to (``int``, ``list[int]``, a ``TypedDict``, a dataclass …):
  ``msgspec.json.decode(raw, type=T)``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeAlias, get_args, get_origin

import msgspec

PayloadDecoder: TypeAlias = Callable[[bytes], object]

_EMPTY = inspect.Parameter.empty
# Annotations that mean "whatever JSON it is".
_UNTYPED: tuple[object, ...] = (dict, list, Any, object)


class PayloadError(Exception):
    """A payload does not decode into its handler's declared type.

    Attributes:
        type_name: the declared type.
        detail: what is wrong, naming the field (``$.amount``) when one is to blame.
    """

    def __init__(self, type_name: str, detail: str) -> None:
        super().__init__(f"payload does not decode as {type_name}: {detail}")
        self.type_name = type_name
        self.detail = detail


def payload_decoder(annotation: object) -> PayloadDecoder:
    """Build the decoder for a handler's payload annotation.

    Args:
        annotation: the payload parameter's resolved annotation, or ``inspect.Parameter.empty``.

    Returns:
        A function from JSON bytes to the payload; it raises :class:`PayloadError` when the
        bytes do not decode into the declared type.

    Raises:
        TypeError: msgspec cannot decode into the annotation.
    """
    base = _strip_annotated(annotation)
    if annotation is _EMPTY or base in _UNTYPED:
        return _plain(_name(annotation))
    if isinstance(base, type) and _is_pydantic_model(base):
        return _pydantic(base)
    try:
        decoder: msgspec.json.Decoder[object] = msgspec.json.Decoder(annotation)
    except TypeError as e:
        raise TypeError(f"a payload cannot be decoded as {_name(annotation)}: {e}") from e
    return _typed(decoder, _name(annotation))


def _plain(type_name: str) -> PayloadDecoder:
    decode = msgspec.json.decode

    def run(raw: bytes) -> object:
        try:
            return decode(raw)
        except msgspec.DecodeError as e:
            raise PayloadError(type_name, str(e)) from e

    return run


def _typed(decoder: msgspec.json.Decoder[object], type_name: str) -> PayloadDecoder:
    decode = decoder.decode

    def run(raw: bytes) -> object:
        try:
            return decode(raw)
        except msgspec.DecodeError as e:  # ValidationError is a DecodeError
            raise PayloadError(type_name, str(e)) from e

    return run


def _pydantic(model: type) -> PayloadDecoder:
    pydantic = sys.modules["pydantic"]
    validate: Callable[[bytes], object] = model.model_validate_json  # type: ignore[attr-defined]
    validation_error: type[Exception] = pydantic.ValidationError
    type_name = model.__qualname__

    def run(raw: bytes) -> object:
        try:
            # pydantic reads str, bytes or bytearray only; a pushed payload is msgspec.Raw.
            return validate(bytes(raw))
        except validation_error as e:
            raise PayloadError(type_name, _pydantic_detail(e)) from e

    return run


def _pydantic_detail(error: Exception) -> str:
    # Shaped like msgspec's messages ("... - at `$.items[0].sku`") so both read the same.
    errors: list[dict[str, Any]] = error.errors(include_url=False)  # type: ignore[attr-defined]
    parts = []
    for item in errors:
        loc: tuple[str | int, ...] = item.get("loc") or ()
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        parts.append(f"{item.get('msg')} - at `{path}`")
    return "; ".join(parts) or str(error)


def _is_pydantic_model(cls: type) -> bool:
    # A model class exists only if its module imported pydantic, so looking in sys.modules
    # recognises every model without making pydantic a run-time dependency.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _strip_annotated(annotation: object) -> object:
    if get_origin(annotation) is Annotated:
        return get_args(annotation)[0]
    return annotation


def _name(annotation: object) -> str:
    if annotation is _EMPTY:
        return "JSON"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
