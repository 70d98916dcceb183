"""World values (CBOR data model) <-> JSON text for the wire and the CLI.

JSON lacks byte strings: they travel as ``{"$bytes": "<base64>"}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aos.errors import InvalidArgument


def to_jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"} and isinstance(value["$bytes"], str):
            return base64.b64decode(value["$bytes"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidArgument("world values have no floats; use integers or text")
        return int(value)
    return value


def _bytes_object(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__name__} is not a world value")


# bytes go through the encoder's hook, so a value is walked once, in C; a Python walk first
# (``to_jsonable``) was half of a tail's cost per record
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_bytes_object)


def dumps(value: Any) -> str:
    try:
        return _ENCODER.encode(value)
    except TypeError:  # keys JSON cannot write or sort (bytes, mixed int and text): spell them with str()
        return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))


def _object(value: dict[str, Any]) -> Any:
    if len(value) == 1 and isinstance(value.get("$bytes"), str):
        return base64.b64decode(value["$bytes"])
    return value


def _number(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise InvalidArgument("world values have no floats; use integers or text")
    return int(number)


def _constant(text: str) -> Any:
    raise InvalidArgument("world values have no floats; use integers or text")


# one decoder for every call: json.loads with hooks builds a decoder and its scanner each time, which
# cost as much as the parse (json.loads shares its own default decoder the same way)
_DECODER = json.JSONDecoder(object_hook=_object, parse_float=_number, parse_constant=_constant)


def loads(text: str, what: str = "value") -> Any:
    """``from_jsonable(json.loads(text))``, with the conversions done by the parser's hooks (no second walk)."""
    try:
        if type(text) is str and not text.startswith("\ufeff"):  # json.loads refuses a BOM before decoding
            return _DECODER.decode(text)
        return json.loads(text, object_hook=_object, parse_float=_number, parse_constant=_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
