"""Canonical CBOR and SHA-256 identity, byte-compatible with AOS ``aos-cbor``.

How it works: AOS encodes a value by turning it into a serde_cbor ``Value``
(a BTreeMap whose key order is RFC 7049 canonical: major type, then encoded
length, then bytes) and writing it after the self-describe tag ``d9d9f7``.
We write the same bytes directly: map keys are sorted by their *encoded* form,
length first; integers and lengths use the shortest head; floats use the
shortest of half/single/double that keeps the value; nothing is indefinite.
The hash of a value covers the tag too, so ``{}`` hashes ``d9d9f7a0``.

The value model is plain Python: ``None, bool, int, float, str, bytes, list,
tuple, dict``. Decoding gives lists (never tuples) and dicts; ``decode``
refuses anything that is not exactly the canonical encoding of what it
decoded, so a tampered journal record cannot smuggle in a second spelling of
the same value.

Decoding has a native path: ``cbor2`` (a Rust extension) parses, and only an
exact canonical encoding of a plain value is taken from it. ``decode`` checks
that by re-encoding (the Python encoder is the reference; it is faster than
cbor2's canonical mode, which sorts every map through a Python-level
``sorted``), so anything cbor2 would read more liberally than we do (tags,
simple values, indefinite lengths, duplicate keys, array keys, long heads)
fails the check and goes to the Python decoder, which gives the reference
answer or error. ``decode_trusted`` and ``canonicalize`` read bytes this
process encoded, so they take cbor2's value directly. cbor2's nesting limit
is set to ours (256 containers).

Encoding has a native path too: ``_ccbor`` (C, built by ``setup.py``;
optional) writes the plain value model (exact str, int within 64-bit heads,
float, bytes, list, tuple, dict, None, bool) and hands anything else back
(``Fallback``: subclasses, buffers, big ints, array keys, keys that encode
alike, very deep values, surrogates) to the Python encoder below, which stays
the reference; ``tests/world/test_cbor_cencoder.py`` checks the two agree
byte for byte. cbor2's canonical encoder is not used: it writes the same
bytes, ~2x slower than the Python encoder and ~20x slower than the C one.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

from aos.kernel.world.errors import CborError

try:  # the native parser; without it everything runs on the Python one below
    import cbor2 as _cbor2

    _native_loads: Any = _cbor2.loads
except ImportError:  # pragma: no cover - cbor2 is a dependency
    _native_loads = None

try:  # the C encoder (setup.py builds it; optional): same bytes, ~10-20x faster
    from aos.kernel.world import _ccbor

    _native_encode: Any = _ccbor.encode
    _NativeFallback: type[Exception] = _ccbor.Fallback
except ImportError:  # not compiled here: the Python encoder below does everything
    _native_encode = None
    _NativeFallback = Exception

SELF_DESCRIBE = b"\xd9\xd9\xf7"
HASH_PREFIX = "sha256:"

# RFC 8949 caps a head at 64 bits; bigger ints would need bignum tags, which
# AIR values never use, so they are refused instead of silently tagged.
_MAX_UINT = (1 << 64) - 1
MAX_DEPTH = 256  # containers one value may nest; deeper values do not decode


def _head(major: int, n: int, out: bytearray) -> None:
    m = major << 5
    if n < 24:
        out.append(m | n)
    elif n < 0x100:
        out.append(m | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(m | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x100000000:
        out.append(m | 26)
        out += n.to_bytes(4, "big")
    else:
        out.append(m | 27)
        out += n.to_bytes(8, "big")


def _float(x: float, out: bytearray) -> None:
    # serde_cbor writes the shortest width that round-trips; NaN is the
    # canonical quiet half-precision NaN.
    if math.isnan(x):
        out += b"\xf9\x7e\x00"
        return
    try:
        half = struct.pack(">e", x)
        if struct.unpack(">e", half)[0] == x:
            out.append(0xF9)
            out += half
            return
    except OverflowError:
        pass
    try:
        single = struct.pack(">f", x)
        if struct.unpack(">f", single)[0] == x:
            out.append(0xFA)
            out += single
            return
    except OverflowError:
        pass
    out.append(0xFB)
    out += struct.pack(">d", x)


# Encoded text keys, memoized: workflows reuse a small set of field names and
# sorting needs each key's bytes. Bounded so hostile data cannot grow it.
_KEYS: dict[str, bytes] = {}
_KEYS_MAX = 4096


def _key(k: Any) -> bytes:
    if type(k) is str:
        b = _KEYS.get(k)
        if b is None:
            kb = bytearray()
            _enc(k, kb)
            b = bytes(kb)
            if len(_KEYS) < _KEYS_MAX:
                _KEYS[k] = b
        return b
    kb = bytearray()
    _enc(k, kb)
    return bytes(kb)


# The canonical key order of a map depends only on its keys, and workflows build
# the same few shapes (records, ctx, receipts) again and again: remember the
# order per shape (a tuple of the keys in insertion order). Bounded, like _KEYS.
_ORDERS: dict[tuple[Any, ...], tuple[tuple[Any, bytes], ...]] = {}
_ORDERS_MAX = 4096


def _order(shape: tuple[Any, ...]) -> tuple[tuple[Any, bytes], ...]:
    for k in shape:
        if type(k) is tuple:  # an array key: no decoder (ours or AOS's) reads it back
            raise CborError("map keys cannot be arrays")
    entries = sorted(((k, _key(k)) for k in shape), key=lambda e: (len(e[1]), e[1]))
    prev = b""
    for _, kb in entries:
        if kb == prev:
            raise CborError("map has two keys with the same encoding")
        prev = kb
    order = tuple(entries)
    if len(_ORDERS) < _ORDERS_MAX and all(type(k) is str for k in shape):
        _ORDERS[shape] = order
    return order


def _enc(v: Any, out: bytearray) -> None:
    t = type(v)
    if t is str:
        b = v.encode("utf-8")
        n = len(b)
        if n < 24:
            out.append(0x60 | n)
        else:
            _head(3, n, out)
        out += b
    elif t is int:
        if 0 <= v < 24:
            out.append(v)
        elif 0 <= v <= _MAX_UINT:
            _head(0, v, out)
        elif -1 - _MAX_UINT <= v < 0:
            _head(1, -1 - v, out)
        else:
            raise CborError(f"integer out of 64-bit range: {v}")
    elif t is dict:
        if not v:
            out.append(0xA0)
            return
        shape = tuple(v)
        order = _ORDERS.get(shape)
        if order is None:
            order = _order(shape)
        _head(5, len(order), out)
        for k, kb in order:
            out += kb
            _enc(v[k], out)
    elif t is list or t is tuple:
        _head(4, len(v), out)
        for item in v:
            _enc(item, out)
    elif v is None:
        out.append(0xF6)
    elif v is True:
        out.append(0xF5)
    elif v is False:
        out.append(0xF4)
    elif t is bytes:
        _head(2, len(v), out)
        out += v
    elif t is float:
        _float(v, out)
    else:
        _enc_other(v, out)


def _enc_other(v: Any, out: bytearray) -> None:
    # subclasses and buffer types: rarer, so checked after the exact types
    if isinstance(v, bool):
        out.append(0xF5 if v else 0xF4)
    elif isinstance(v, int):
        _enc(int(v), out)
    elif isinstance(v, float):
        _float(float(v), out)
    elif isinstance(v, str):
        _enc(str(v), out)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        _enc(bytes(v), out)
    elif isinstance(v, (list, tuple)):
        _enc(list(v), out)
    elif isinstance(v, dict):
        _enc(dict(v), out)
    else:
        raise CborError(f"cannot encode {type(v).__name__} as CBOR")


def encode_body(value: Any) -> bytes:
    """Canonical CBOR of ``value`` without the self-describe tag (for nesting)."""
    if _native_encode is not None:
        try:
            return _native_encode(value, False)
        except _NativeFallback:
            pass
    return _encode_body_python(value)


def _encode_body_python(value: Any) -> bytes:
    """The reference encoder (``encode_body`` without the native path)."""
    out = bytearray()
    try:
        _enc(value, out)
    except RecursionError as exc:  # a workflow can return absurdly deep values
        raise CborError("value nested too deeply") from exc
    return bytes(out)


def encode(value: Any) -> bytes:
    """Canonical CBOR of ``value``, self-describe tag first. Raises ``CborError``."""
    if _native_encode is not None:
        try:
            return _native_encode(value, True)
        except _NativeFallback:
            pass
    return SELF_DESCRIBE + _encode_body_python(value)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise CborError("truncated CBOR")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int]:
        ib = self.take(1)[0]
        major, info = ib >> 5, ib & 31
        if major == 7:
            return major, info
        if info < 24:
            return major, info
        if info == 24:
            return major, self.take(1)[0]
        if info == 25:
            return major, int.from_bytes(self.take(2), "big")
        if info == 26:
            return major, int.from_bytes(self.take(4), "big")
        if info == 27:
            return major, int.from_bytes(self.take(8), "big")
        raise CborError("indefinite lengths and reserved heads are not canonical")

    def item(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CborError("CBOR nested too deeply")
        major, n = self.head()
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return self.take(n)
        if major == 3:
            try:
                return self.take(n).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CborError("text is not UTF-8") from exc
        if major == 4:
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            d: dict[Any, Any] = {}
            for _ in range(n):
                k = self.item(depth + 1)
                if isinstance(k, (list, dict)):
                    raise CborError("array and map keys are not supported")
                d[k] = self.item(depth + 1)
            return d
        if major == 6:
            raise CborError(f"unexpected CBOR tag {n}")
        # major 7: simple values and floats
        if n == 20:
            return False
        if n == 21:
            return True
        if n == 22:
            return None
        if n == 25:
            return struct.unpack(">e", self.take(2))[0]
        if n == 26:
            return struct.unpack(">f", self.take(4))[0]
        if n == 27:
            return struct.unpack(">d", self.take(8))[0]
        raise CborError(f"unsupported CBOR simple value {n}")


def decode(data: bytes) -> Any:
    """Decode tagged canonical CBOR. Raises ``CborError`` if the bytes are not
    exactly ``encode`` of the result (missing tag, wrong order, long heads...)."""
    data = bytes(data)
    if _native_loads is not None and data.startswith(SELF_DESCRIBE):
        try:
            value = _native_loads(data[3:], max_depth=MAX_DEPTH)
            if encode(value) == data:
                return value
        except Exception:  # noqa: BLE001 - whatever cbor2 or the check refused, the reference decides
            pass
    return _decode_python(data)


def _decode_python(data: bytes) -> Any:
    """The reference decoder (``decode`` without the native path)."""
    if not data.startswith(SELF_DESCRIBE):
        raise CborError("missing self-describe tag d9d9f7")
    value = decode_body(data[3:])
    if encode(value) != data:
        raise CborError("CBOR is not canonical")
    return value


def decode_body(data: bytes) -> Any:
    """Decode one untagged CBOR item, lenient about canonical form (used on
    workflow output, which the stepper re-encodes canonically anyway)."""
    r = _Reader(bytes(data))
    value = r.item()
    if r.pos != len(r.buf):
        raise CborError("trailing bytes after CBOR item")
    return value


def decode_trusted(data: bytes) -> Any:
    """Decode tagged bytes this process encoded itself (skips the canonical re-check)."""
    return decode_body_trusted(data[3:])


def decode_body_trusted(data: bytes) -> Any:
    """Decode untagged bytes this process encoded itself (``encode_body`` output)."""
    if _native_loads is not None:
        try:
            return _native_loads(data, max_depth=MAX_DEPTH)
        except Exception:  # noqa: BLE001 - e.g. too deep: the Python decoder says why
            pass
    return decode_body(data)


def decode_lenient(data: bytes) -> Any:
    """Decode one CBOR item with an optional self-describe tag, any key order."""
    data = bytes(data)
    if data.startswith(SELF_DESCRIBE):
        data = data[3:]
    if _native_loads is not None:
        # canonical bytes (what well-behaved modules write) have one reading: take cbor2's
        try:
            value = _native_loads(data, max_depth=MAX_DEPTH)
            if encode_body(value) == data:
                return value
        except Exception:  # noqa: BLE001 - the Python decoder decides
            pass
    return decode_body(data)


def sha256_text(data: bytes) -> str:
    """``sha256:<hex>`` of raw bytes."""
    return HASH_PREFIX + hashlib.sha256(data).hexdigest()


def hash_value(value: Any) -> str:
    """``sha256:<hex>`` of the canonical CBOR of ``value`` (tag included)."""
    return sha256_text(encode(value))


def canonicalize(value: Any) -> Any:
    """The value as decoding its canonical bytes would give it (tuples become
    lists, dicts are key-ordered); used so in-memory values compare equal to
    replayed ones."""
    return decode_trusted(encode(value))


def is_hash_text(s: object) -> bool:
    if not isinstance(s, str) or not s.startswith(HASH_PREFIX) or len(s) != 71:
        return False
    return all(c in "0123456789abcdef" for c in s[7:])
