"""The JSON a world's journal and tail send for each record: the record's fields, sorted, with ``at``."""

from aos.kernel.host import jsonvalue
from aos.kernel.host.server import record_json
from aos.kernel.world.records import (DomainEventRecord, EffectIntentRecord, EffectRejectedRecord, EventRecord,
                                      GovernanceRecord, Origin, ReceiptRecord, SnapshotRecord, Stamp, StateRecord,
                                      TrapRecord)

ORIGIN = Origin("agent/session@1", "main")
RECORDS = [
    EventRecord("agent/Command@1", {"kind": "input", "text": "hi", "n": [1, -2, None, True]},
                Stamp(123, b"\x00\xff")),
    ReceiptRecord("sha256:" + "a" * 64, "ok", {"data": b"bytes", "nested": {"b": 1, "a": [{}]}}, Stamp(5)),
    SnapshotRecord("sha256:" + "b" * 64, 7),
    GovernanceRecord("propose", "p1", {"manifest": "sha256:" + "c" * 64}, Stamp(9, b"")),
    DomainEventRecord("agent/Event@1", {"session": "main", "seq": 3}, ORIGIN),
    EffectIntentRecord("sha256:" + "d" * 64, "sha256:" + "e" * 64, "sys/llm.generate@1", {"x": 1}, "llm",
                       ORIGIN, 4, 0),
    EffectRejectedRecord("sys/host.exec@1", {"argv": ["true"]}, Origin("w@1"), 4, 1, "EffectDenied", "no"),
    TrapRecord(ORIGIN, 4, "WorkflowTrap", "boom"),
    StateRecord(4, (("agent/session@1", "main", "sha256:" + "f" * 64), ("w@1", None, None))),
]


def test_record_json_is_the_records_value_with_its_position() -> None:
    """The tail's JSON (decoded straight from the record's bytes) equals the record object's value."""
    for at, record in enumerate(RECORDS):
        assert record_json(at, record.encode()) == jsonvalue.dumps({**record.to_value(), "at": at})


def _reference_loads(text: str):
    import json

    return jsonvalue.from_jsonable(json.loads(text))


def test_loads_equals_the_two_pass_reference() -> None:
    """``jsonvalue.loads`` (hooks in the parser) reads every JSON text as ``from_jsonable(json.loads(...))``
    does: bytes objects, integral floats, and the same refusals."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from aos.errors import InvalidArgument

    leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8) \
        | st.floats(allow_nan=True, allow_infinity=True)
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=5) | st.just("$bytes"), inner, max_size=4), max_leaves=20)

    def outcome(fn, text):
        try:
            return "ok", fn(text)
        except InvalidArgument:
            return "refused", None
        except ValueError:
            return "refused", None

    @settings(max_examples=300, deadline=None)
    @given(values)
    def check(value):
        text = json.dumps(jsonvalue.to_jsonable(value))
        fast = outcome(jsonvalue.loads, text)
        reference = outcome(_reference_loads, text)
        assert fast[0] == reference[0] and (fast[0] == "refused" or (fast[1] == reference[1]
                                                                     and repr(fast[1]) == repr(reference[1])))

    check()
    assert jsonvalue.loads('{"$bytes": "aGk="}') == b"hi"
    assert jsonvalue.loads('{"$bytes": "aGk=", "x": 1}') == {"$bytes": "aGk=", "x": 1}
    assert jsonvalue.loads("[2.0, 1e3]") == [2, 1000]
    for bad in ("1.5", "NaN", "[Infinity]", "{"):
        try:
            jsonvalue.loads(bad)
        except InvalidArgument:
            continue
        raise AssertionError(bad)


def test_dumps_equals_the_two_pass_reference() -> None:
    """``jsonvalue.dumps`` (bytes through the encoder's hook) writes what ``to_jsonable`` then ``json.dumps``
    writes when keys are text (every record's are); other keys still encode (integer keys then sort as
    numbers, and JSON spells true/null keys its own way)."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8)

    def values(keys):
        return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(keys, inner, max_size=4), max_leaves=20)

    def reference(value):
        return json.dumps(jsonvalue.to_jsonable(value), sort_keys=True, separators=(",", ":"))

    @settings(max_examples=300, deadline=None)
    @given(values(st.text(max_size=5)))
    def text_keys(value):
        assert jsonvalue.dumps(value) == reference(value)

    @settings(max_examples=300, deadline=None)
    @given(values(st.text(max_size=3) | st.integers(-12, 12) | st.binary(max_size=2) | st.none()))
    def other_keys(value):
        assert type(json.loads(jsonvalue.dumps(value))) is type(json.loads(reference(value)))

    text_keys()
    other_keys()
    assert jsonvalue.dumps({10: 1, -2: 2}) == '{"-2":2,"10":1}'
    assert jsonvalue.dumps({b"k": 1, "a": b"\x00"}) == '{"a":{"$bytes":"AA=="},"b\'k\'":1}'
