"""Canonical CBOR: AOS vectors, canonical uniqueness, strict decoding."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aos.kernel.world import cbor
from aos.kernel.world.errors import CborError
from hypothesis import given
from hypothesis import strategies as st

VECTORS = [
    ({}, "d9d9f7a0"),
    ({"a": 1, "b": 2}, "d9d9f7a2616101616202"),
    (["hi", 1, True, None], "d9d9f78462686901f5f6"),
]


@pytest.mark.parametrize(("value", "hexed"), VECTORS)
def test_aos_vectors_encode_byte_for_byte(value: Any, hexed: str) -> None:
    """The AOS test vectors encode to exactly the published bytes."""
    assert cbor.encode(value).hex() == hexed


def test_empty_map_hash_matches_aos() -> None:
    """The hash covers the self-describe tag, as in aos-cbor (sha256:75bd49cb...)."""
    h = cbor.hash_value({})
    assert h == "sha256:" + hashlib.sha256(bytes.fromhex("d9d9f7a0")).hexdigest()
    assert h.startswith("sha256:75bd49cb")


def test_map_keys_sort_length_first() -> None:
    """Keys order by encoded length, then bytes (RFC 7049 canonical, as serde_cbor's Value)."""
    assert list(cbor.decode(cbor.encode({"bb": 1, "c": 2, "a": 3}))) == ["a", "c", "bb"]


def test_integer_heads_are_shortest() -> None:
    """Integers use the shortest head at every width boundary."""
    assert cbor.encode_body(23) == b"\x17"
    assert cbor.encode_body(24) == b"\x18\x18"
    assert cbor.encode_body(256) == b"\x19\x01\x00"
    assert cbor.encode_body(-1) == b"\x20"
    assert cbor.encode_body(2**32) == b"\x1b\x00\x00\x00\x01\x00\x00\x00\x00"


def test_floats_use_shortest_exact_width() -> None:
    """A float is written as half, single or double, whichever keeps it exactly."""
    assert cbor.encode_body(1.5) == b"\xf9\x3e\x00"
    assert cbor.encode_body(0.1)[0] == 0xFB
    assert cbor.encode_body(float("nan")) == b"\xf9\x7e\x00"


@pytest.mark.parametrize("data", [
    "a0",                    # missing self-describe tag
    "d9d9f7a2616202616101",  # keys out of order
    "d9d9f71817",            # 23 written with a one-byte head
    "d9d9f79f01ff",          # indefinite-length array
    "d9d9f7a0a0",            # trailing bytes
    "d9d9f7fb3ff8000000000000",  # 1.5 as a double
])
def test_decode_refuses_non_canonical_bytes(data: str) -> None:
    """Decoding rejects every non-canonical spelling, so one value has one encoding."""
    with pytest.raises(CborError):
        cbor.decode(bytes.fromhex(data))


def test_encode_refuses_unknown_types_and_huge_ints() -> None:
    """Values outside the CBOR data model are an error, not a silent conversion."""
    with pytest.raises(CborError):
        cbor.encode({1, 2})
    with pytest.raises(CborError):
        cbor.encode(2**64)


scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


@given(values)
def test_round_trip_is_identity(v: Any) -> None:
    """decode(encode(v)) == v and re-encoding gives the same bytes."""
    data = cbor.encode(v)
    back = cbor.decode(data)
    assert back == v
    assert cbor.encode(back) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=8), st.randoms())
def test_insertion_order_does_not_change_bytes(d: dict[str, int], rnd: Any) -> None:
    """Two dicts with the same items encode (and hash) identically whatever their order."""
    items = list(d.items())
    rnd.shuffle(items)
    assert cbor.encode(dict(items)) == cbor.encode(d)
    assert cbor.hash_value(dict(items)) == cbor.hash_value(d)


def test_absurdly_deep_values_are_a_cbor_error() -> None:
    """A value nested beyond the recursion limit fails as CborError, not RecursionError."""
    v: list[object] = []
    for _ in range(100_000):
        v = [v]
    with pytest.raises(CborError):
        cbor.encode(v)
