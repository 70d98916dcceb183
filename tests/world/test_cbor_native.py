"""Canonical CBOR's native path (cbor2) agrees exactly with the Python reference.

The native parser is only an accelerator: for every input, ``decode`` must
give what the Python decoder gives (the same value, or a ``CborError`` with
the same message), and ``decode_trusted``/``canonicalize`` must give what
decoding the canonical bytes in Python gives. cbor2's canonical encoder is
not used (it is slower than ours), but its rules are checked against ours
here too, so that choice stays a matter of speed, not of bytes.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest
from aos.kernel.world import cbor
from aos.kernel.world.errors import CborError
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS = [
    ({}, "d9d9f7a0"),
    ({"a": 1, "b": 2}, "d9d9f7a2616101616202"),
    (["hi", 1, True, None], "d9d9f78462686901f5f6"),
]

ints = st.integers(min_value=-(2**64), max_value=2**64 - 1)
scalars = (st.none() | st.booleans() | ints | st.floats() | st.text() | st.binary())
keys = st.text(max_size=12) | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)


def same(a: Any, b: Any) -> bool:
    """Structural equality that tells apart what ``==`` does not: types, NaN, the sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        # keys pairwise too: a damaged encoding can decode to a NaN key, which `==` never matches
        return len(a) == len(b) and all(same(ka, kb) and same(va, vb)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    return bool(a == b)


def outcome(fn: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", fn(data)
    except CborError as exc:
        return "error", str(exc)


def test_the_native_parser_is_in_use() -> None:
    """cbor2 imports with its compiled extension, so the fast path is the one that runs."""
    assert cbor._native_loads is cbor2.loads
    assert type(cbor2.loads).__name__ == "builtin_function_or_method"


@pytest.mark.parametrize(("value", "hexed"), VECTORS)
def test_aos_vectors_decode_natively_to_their_values(value: Any, hexed: str) -> None:
    """The AOS vectors decode through the native path to exactly the published values."""
    data = bytes.fromhex(hexed)
    assert same(cbor.decode(data), value)
    assert same(cbor.decode_trusted(data), value)
    assert same(cbor._native_loads(data[3:]), value)


@settings(max_examples=400)
@given(values)
def test_native_decoding_of_canonical_bytes_matches_the_reference(v: Any) -> None:
    """For any value, decode, decode_trusted and canonicalize agree with the Python decoder."""
    try:
        data = cbor.encode(v)
    except CborError:
        return
    ref, got = outcome(cbor._decode_python, data), outcome(cbor.decode, data)
    assert got[0] == ref[0]
    if ref[0] == "error":
        assert got[1] == ref[1]
        return
    assert same(got[1], ref[1])
    assert same(cbor.decode_trusted(data), ref[1])
    assert same(cbor.canonicalize(v), ref[1])


def _mutations(data: bytes, i: int, b: int) -> list[bytes]:
    i %= len(data)
    return [data[:i] + bytes([b]) + data[i + 1:], data[:i] + bytes([b]) + data[i:], data[:i], data + bytes([b])]


@settings(max_examples=400)
@given(values, st.integers(min_value=0), st.integers(0, 255))
def test_native_decoding_of_damaged_bytes_matches_the_reference(v: Any, i: int, b: int) -> None:
    """A canonical encoding with a byte changed, inserted, cut or appended decodes (or fails) as in Python."""
    try:
        data = cbor.encode(v)
    except CborError:
        return
    for bad in _mutations(data, i, b):
        want, got = outcome(cbor._decode_python, bad), outcome(cbor.decode, bad)
        assert want[0] == got[0], (bad.hex(), want, got)
        assert want[1] == got[1] if want[0] == "error" else same(want[1], got[1])


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_native_decoding_of_arbitrary_bytes_matches_the_reference(body: bytes) -> None:
    """Arbitrary bytes after the tag decode (or fail) exactly as the Python decoder decides."""
    data = cbor.SELF_DESCRIBE + body
    want, got = outcome(cbor._decode_python, data), outcome(cbor.decode, data)
    assert want[0] == got[0], (data.hex(), want, got)
    assert want[1] == got[1] if want[0] == "error" else same(want[1], got[1])


def _lenient_python(data: bytes) -> Any:
    return cbor.decode_body(data[3:] if data.startswith(cbor.SELF_DESCRIBE) else data)


@settings(max_examples=400)
@given(values, st.integers(min_value=0), st.integers(0, 255), st.booleans())
def test_lenient_decoding_matches_the_reference(v: Any, i: int, b: int, tagged: bool) -> None:
    """Workflow output (tag optional, any key order) decodes natively exactly as the Python decoder reads it."""
    try:
        data = cbor.encode(v) if tagged else cbor.encode_body(v)
    except CborError:
        return
    liberal = cbor2.dumps(v)  # insertion-order keys, 64-bit floats: valid output, not canonical
    for raw in [data, liberal, *_mutations(data, i, b)]:
        want, got = outcome(_lenient_python, raw), outcome(cbor.decode_lenient, raw)
        assert want[0] == got[0], (raw.hex(), want, got)
        assert want[1] == got[1] if want[0] == "error" else same(want[1], got[1])


@pytest.mark.parametrize("hexed", [
    "d9d9f7c074323031332d30332d32315432303a30343a30305a",  # tag 0 (a date): cbor2 reads a datetime
    "d9d9f7c249010000000000000000",  # bignum 2**64: cbor2 reads an int we cannot write
    "d9d9f7d9010283010203",          # tag 258: cbor2 reads a set
    "d9d9f7f7",                      # undefined
    "d9d9f7f0",                      # simple value 16
    "d9d9f7a1820102a0",              # an array as a map key: cbor2 reads a tuple
    "d9d9f7a1a0a0",                  # a map as a map key
    "d9d9f7d9d9f7a0",                # the tag twice
    "d9d9f79f01ff",                  # indefinite array
    "d9d9f7a2616101616102",          # duplicate key
    "d9d9f76180",                    # invalid UTF-8
])
def test_what_cbor2_reads_liberally_is_refused_as_in_python(hexed: str) -> None:
    """Bytes cbor2 would accept but that are no canonical plain value fail with the reference's error."""
    data = bytes.fromhex(hexed)
    want = outcome(cbor._decode_python, data)
    assert want[0] == "error"
    assert outcome(cbor.decode, data) == want


def _nest(depth: int) -> Any:
    v: Any = 0
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize("depth", [cbor.MAX_DEPTH - 1, cbor.MAX_DEPTH, cbor.MAX_DEPTH + 1, cbor.MAX_DEPTH + 50])
def test_nesting_limit_is_the_same_on_both_paths(depth: int) -> None:
    """Values nest at most MAX_DEPTH containers deep, whichever decoder reads them."""
    data = cbor.encode(_nest(depth))
    want = outcome(cbor._decode_python, data)
    assert want[0] == ("ok" if depth <= cbor.MAX_DEPTH else "error")
    assert outcome(cbor.decode, data)[0] == want[0]
    assert outcome(cbor.decode_trusted, data)[0] == want[0]


def test_array_keys_are_refused_when_encoding() -> None:
    """A tuple map key would encode to bytes no decoder reads back, so encoding refuses it."""
    with pytest.raises(CborError):
        cbor.encode({(1, 2): 3})


@settings(max_examples=400)
@given(values)
def test_cbor2_canonical_encoder_writes_our_bytes(v: Any) -> None:
    """cbor2's canonical mode follows our rules (length-first key order, shortest ints and floats,
    definite lengths) for every plain value: we keep our encoder because it is faster, not different."""
    try:
        ours = cbor.encode_body(v)
    except CborError:
        return
    assert cbor2.dumps(v, canonical=True) == ours
