"""The C encoder (``aos.kernel.world._ccbor``) writes exactly the Python reference's bytes.

It is an accelerator: for every value it either gives the bytes the Python
encoder gives, or raises ``Fallback`` so ``cbor.encode`` runs the Python
encoder (which then gives the reference bytes or the reference error). The
properties below hold that for generated values, including the corners the
C code treats on its own (floats at the half/single boundaries, 64-bit ints,
key order, nesting) and the ones it leaves to Python (subclasses, big ints,
array keys, keys that encode alike, surrogates).
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from aos.kernel.world import _ccbor, cbor
from aos.kernel.world.errors import CborError
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS = [
    ({}, "d9d9f7a0"),
    ({"a": 1, "b": 2}, "d9d9f7a2616101616202"),
    (["hi", 1, True, None], "d9d9f78462686901f5f6"),
]
GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


class MyInt(int):
    pass


class MyStr(str):
    pass


ints = st.integers(min_value=-(2**65), max_value=2**65)
floats = st.floats() | st.sampled_from([65504.0, 65520.0, 2.0**-24, 2.0**-25, 3.4028234663852886e38, 1e39,
                                        float("inf"), float("-inf"), -0.0, 5e-324, 1.0000001])
odd = st.builds(MyInt, st.integers(-5, 5)) | st.builds(MyStr, st.text(max_size=3)) | st.builds(bytearray, st.binary())
scalars = st.none() | st.booleans() | ints | floats | st.text() | st.binary() | odd
keys = (st.text(max_size=12) | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=8) | st.booleans()
        | st.none() | floats | st.tuples(st.integers(0, 3)))
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=6) | st.lists(inner, max_size=4).map(tuple)
                   | st.dictionaries(keys, inner, max_size=6)),
    max_leaves=40,
)


def reference(value: Any, tagged: bool) -> tuple[str, Any]:
    try:
        body = cbor._encode_body_python(value)
    except (CborError, UnicodeEncodeError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    return "ok", (cbor.SELF_DESCRIBE + body) if tagged else body


def public(value: Any, tagged: bool) -> tuple[str, Any]:
    try:
        return "ok", cbor.encode(value) if tagged else cbor.encode_body(value)
    except (CborError, UnicodeEncodeError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def test_the_c_encoder_is_in_use() -> None:
    """setup.py built the extension, so encode runs in C here."""
    assert cbor._native_encode is _ccbor.encode


@pytest.mark.parametrize(("value", "hexed"), VECTORS)
def test_aos_vectors_encode_byte_for_byte_in_c(value: Any, hexed: str) -> None:
    assert _ccbor.encode(value, True).hex() == hexed
    assert _ccbor.encode(value, False).hex() == hexed[6:]


@settings(max_examples=400)
@given(values, st.booleans())
def test_c_bytes_are_the_reference_bytes_or_it_falls_back(v: Any, tagged: bool) -> None:
    """For any value the C encoder writes the Python encoder's bytes, or hands the value back to it."""
    want = reference(v, tagged)
    try:
        got = _ccbor.encode(v, tagged)
    except _ccbor.Fallback:
        got = None
    if got is not None:
        assert want == ("ok", got)
    assert public(v, tagged) == want


@settings(max_examples=300)
@given(st.floats(width=16) | st.floats(width=32) | st.floats())
def test_floats_take_the_shortest_width_that_keeps_them(x: float) -> None:
    assert _ccbor.encode(x, False) == cbor._encode_body_python(x)


@pytest.mark.parametrize("value", [
    2**64, -(2**64), -(2**63) - 1,            # past the C int path: Python decides (a head or CborError)
    {(1, 2): 3},                              # array key
    {float("nan"): 1, -float("nan"): 2},      # two keys that encode alike
    MyInt(3), MyStr("x"), bytearray(b"x"), memoryview(b"x"), {1, 2}, object(),
    "\ud800",                                 # a lone surrogate is no UTF-8
])
def test_what_c_leaves_to_python_gets_the_reference_answer(value: Any) -> None:
    with pytest.raises(_ccbor.Fallback):
        _ccbor.encode(value, True)
    assert public(value, True) == reference(value, True)


def _nest(depth: int) -> Any:
    v: Any = 0
    for _ in range(depth):
        v = [{"k": v}] if depth % 2 else [v]
    return v


@pytest.mark.parametrize("depth", [10, 150, 199, 200, 201, 400, 2000])
def test_deep_values_encode_or_fail_as_in_python(depth: int) -> None:
    """Deep values fall back to Python, whose recursion limit decides (CborError past it)."""
    v = _nest(depth)
    assert public(v, True) == reference(v, True)


def test_golden_journal_records_reencode_to_their_bytes() -> None:
    """Each record of the golden AOS journal, decoded, encodes in C to exactly the bytes it was read from."""
    seen = 0
    for name in sorted(os.listdir(GOLDEN)):
        if not name.endswith(".cbor"):
            continue
        with open(os.path.join(GOLDEN, name), "rb") as f:
            data = f.read()
        journal = cbor.decode(data)
        assert _ccbor.encode(journal, True) == data
        for record in journal["records"]:
            assert _ccbor.encode(cbor.decode(record), True) == record
            seen += 1
    assert seen


def test_nan_is_the_canonical_half_nan() -> None:
    assert _ccbor.encode(math.nan, False) == b"\xf9\x7e\x00"
    assert _ccbor.encode(-math.nan, False) == b"\xf9\x7e\x00"
