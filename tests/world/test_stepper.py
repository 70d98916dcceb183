"""The stepper: cells, effect admission, receipts, domain events, traps, door checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aos.kernel.world import (
    DomainEventRecord,
    EffectIntentRecord,
    EffectRejectedRecord,
    ReceiptRecord,
    SchemaViolation,
    StateRecord,
    World,
)
from aos.kernel.world.cbor import is_hash_text
from aos.kernel.world.testing import Clock, Harness

MakeWorld = Callable[..., World]
Doc = Callable[..., dict[str, Any]]
SCRIPT = "test/Script@1"
WF = "test/scripted@1"


def _effects(res: Any, cls: type) -> list[Any]:
    return [r for r in res.records if isinstance(r, cls)]


def test_keyed_cells_are_created_on_first_event_and_deleted_on_null_state(
        built_examples: Path, make_world: MakeWorld) -> None:
    """Each key gets its own state; returning null state removes that cell only."""
    w = make_world(built_examples / "counter")
    clock = Clock()
    for key, by in [("a", 1), ("b", 10), ("a", 2)]:
        assert w.apply(clock.event("demo/CellEvent@1", {"id": key, "by": by})).status == "ok"
    assert w.cell_keys("demo/cells@1") == ["a", "b"]
    assert w.state("demo/cells@1", "a") == {"count": 3}
    assert w.state("demo/cells@1", "b") == {"count": 10}
    res = w.apply(clock.event("demo/CellEvent@1", {"id": "a", "by": -3}))
    assert w.cell_keys("demo/cells@1") == ["b"]
    assert w.state("demo/cells@1", "a") is None
    (state_rec,) = _effects(res, StateRecord)
    assert state_rec.changes == (("demo/cells@1", "a", None),)


def test_admitted_effect_becomes_an_open_intent(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """An effect that is declared, valid and granted is journaled as an intent and stays open."""
    w = make_world(scripted_doc())
    res = w.apply(Clock().event(SCRIPT, {"effects": [
        {"effect": "sys/http.request@1", "params": {"method": "GET", "url": "https://example.com/x"}},
        {"effect": "sys/host.fs.read@1", "params": {"path": "src/main.py"}},
    ]}))
    assert res.status == "ok"
    assert [i.grant for i in res.intents] == ["web", "repo"]
    assert _effects(res, EffectIntentRecord) == list(res.intents)
    a, b = res.intents
    assert is_hash_text(a.intent_hash) and is_hash_text(a.idempotency_key)
    assert a.idempotency_key != b.idempotency_key
    assert (a.emitted_at_seq, a.effect_index, b.effect_index) == (1, 0, 1)
    assert w.open_intents() == tuple(sorted(res.intents, key=lambda i: i.intent_hash))
    assert w.state(WF) == {"n": 1, "receipts": []}


REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("undeclared", {"effect": "sys/unknown@1", "params": {}}, "EffectDenied", "does not declare"),
    ("bad params", {"effect": "sys/http.request@1", "params": {"method": "DELETE", "url": "https://example.com"}},
     "SchemaViolation", "$.params.method"),
    ("host not granted", {"effect": "sys/http.request@1", "params": {"method": "GET", "url": "https://evil.test/"}},
     "EffectDenied", "evil.test"),
    ("path escapes root", {"effect": "sys/host.fs.read@1", "params": {"path": "../../etc/passwd"}},
     "EffectDenied", "outside"),
    ("write on read-only", {"effect": "sys/host.fs.write@1", "params": {"path": "a.txt", "data": b"x"}},
     "EffectDenied", "read-only"),
    ("command not allowed", {"effect": "sys/host.exec@1", "params": {"argv": ["rm", "-rf", "/"]}},
     "EffectDenied", "not allowed"),
    ("cwd outside", {"effect": "sys/host.exec@1", "params": {"argv": ["ls"], "cwd": "/etc"}}, "EffectDenied", "outside"),
    ("llm provider", {"effect": "sys/llm.generate@1", "params": {"provider": "openai", "max_tokens": 5}},
     "EffectDenied", "provider"),
    ("llm budget", {"effect": "sys/llm.generate@1", "params": {"provider": "anthropic", "max_tokens": 5000}},
     "EffectDenied", "max_tokens"),
]


@pytest.mark.parametrize(("what", "effect", "code", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_effects_are_journaled_rejections(
        make_world: MakeWorld, scripted_doc: Doc, what: str, effect: dict[str, Any], code: str, reason: str) -> None:
    """A refused effect becomes an EffectRejectedRecord, no intent; the step's state still commits and the
    emitting cell gets an error receipt saying why."""
    w = make_world(scripted_doc())
    res = w.apply(Clock().event(SCRIPT, {"effects": [effect]}))
    assert res.status == "ok" and res.intents == ()
    (rej,) = _effects(res, EffectRejectedRecord)
    assert (rej.code, rej.effect, rej.effect_index) == (code, effect["effect"], 0)
    assert reason in rej.reason
    assert w.open_intents() == ()
    state = w.state(WF)
    assert state["n"] == 2  # the event, then the refusal's error receipt
    ((name, status, payload),) = state["receipts"]
    assert (name, status, payload["error"], payload["code"]) == (effect["effect"], "error", "refused", code)


def test_no_grant_of_the_kind_refuses(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Without any grant of the effect's kind the effect is refused, even if declared."""
    w = make_world(scripted_doc(grants={}))
    res = w.apply(Clock().event(SCRIPT, {"effects": [{"effect": "sys/timer.set@1", "params": {"deliver_at_ns": 5}}]}))
    (rej,) = _effects(res, EffectRejectedRecord)
    assert rej.code == "EffectDenied" and "no timer grant" in rej.reason


def test_grant_limited_to_other_workflows_refuses(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """A grant naming workflows covers only those workflows."""
    w = make_world(scripted_doc(grants={"clock": {"cap": "timer", "workflows": ["demo/counter_py@1"]}}))
    res = w.apply(Clock().event(SCRIPT, {"effects": [{"effect": "sys/timer.set@1", "params": {"deliver_at_ns": 5}}]}))
    (rej,) = _effects(res, EffectRejectedRecord)
    assert "not granted to test/scripted@1" in rej.reason


def test_receipts_reach_the_cell_that_emitted_the_intent(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Receipts are delivered to the exact emitting cell, whatever order they arrive in."""
    w = make_world(scripted_doc(keyed=True))
    clock = Clock()
    timer = {"effect": "sys/timer.set@1", "params": {"deliver_at_ns": 9}}
    (ia,) = w.apply(clock.event(SCRIPT, {"id": "a", "effects": [timer]})).intents
    (ib,) = w.apply(clock.event(SCRIPT, {"id": "b", "effects": [timer]})).intents
    assert ia.idempotency_key != ib.idempotency_key and ia.origin.key == "a"
    assert w.apply(ReceiptRecord(ib.intent_hash, "ok", "for b", clock.stamp())).status == "ok"
    assert w.apply(ReceiptRecord(ia.intent_hash, "timeout", None, clock.stamp())).status == "ok"
    assert w.state(WF, "a")["receipts"] == [["sys/timer.set@1", "timeout", None]]
    assert w.state(WF, "b")["receipts"] == [["sys/timer.set@1", "ok", "for b"]]
    assert w.open_intents() == ()


def test_bad_or_duplicate_receipts_are_rejected_without_change(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Unknown, settled, ill-typed or bad-status receipts change nothing; a bad one leaves the intent open."""
    w = make_world(scripted_doc())
    clock = Clock()
    get = {"effect": "sys/http.request@1", "params": {"method": "GET", "url": "http://example.com"}}
    (intent,) = w.apply(clock.event(SCRIPT, {"effects": [get]})).intents
    before = w.state_bytes(WF)
    bad = [
        ReceiptRecord("sha256:" + "1" * 64, "ok", {"status": 200}, clock.stamp()),
        ReceiptRecord(intent.intent_hash, "ok", {"status": "200"}, clock.stamp()),
        ReceiptRecord(intent.intent_hash, "maybe", None, clock.stamp()),
    ]
    for rec in bad:
        res = w.apply(rec)
        assert res.status == "rejected" and res.records == () and res.error is not None
    assert w.state_bytes(WF) == before and w.open_intents() == (intent,)
    assert w.apply(ReceiptRecord(intent.intent_hash, "ok", {"status": 200}, clock.stamp())).status == "ok"
    assert w.apply(ReceiptRecord(intent.intent_hash, "ok", {"status": 200}, clock.stamp())).status == "rejected"
    assert w.state(WF)["receipts"] == [["sys/http.request@1", "ok", {"status": 200}]]


def test_domain_events_are_routed_in_the_same_apply(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """A domain event is journaled and delivered to its subscribers within the same step result."""
    w = make_world(scripted_doc())
    res = w.apply(Clock().event(SCRIPT, {"emit": [{"schema": "demo/CounterEvent@1", "value": {"by": 5}}]}))
    (de,) = _effects(res, DomainEventRecord)
    assert (de.schema, de.value, de.origin.workflow) == ("demo/CounterEvent@1", {"by": 5}, WF)
    assert w.state("demo/counter_py@1") == {"count": 5}


def test_invalid_output_is_a_trap_and_discards_only_that_step(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Raising, a schema-violating state and an unknown domain event schema all trap without changing state."""
    w = make_world(scripted_doc())
    clock = Clock()
    w.apply(clock.event(SCRIPT, {}))
    before = w.state_bytes(WF)
    cases = [({"trap": True}, "WorkflowTrap"), ({"bad_state": True}, "SchemaViolation"),
             ({"emit": [{"schema": "nope", "value": 1}]}, "SchemaViolation")]
    for value, code in cases:
        res = w.apply(clock.event(SCRIPT, value))
        assert res.status == "ok"
        assert [t.code for t in res.traps] == [code]
        assert w.state_bytes(WF) == before
    assert w.apply(clock.event(SCRIPT, {})).traps == ()
    assert w.state(WF)["n"] == 2


def test_events_failing_their_schema_are_refused_at_the_door(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """check_event names the bad field, and apply rejects the same event with no records."""
    w = make_world(scripted_doc(keyed=True))
    err = w.check_event(SCRIPT, {"id": "a", "delete": "yes"})
    assert err is not None and err.path == "$.value.delete"
    missing_key = w.check_event(SCRIPT, {})
    assert missing_key is not None and "key field" in str(missing_key)
    assert w.check_event("nope@1", {}) is not None
    assert w.check_event(SCRIPT, {"id": "a"}) is None
    res = w.apply(Clock().event(SCRIPT, {"id": 7}))
    assert res.status == "rejected" and res.records == () and res.error is not None
    assert res.error.code == "SchemaViolation"
    assert w.cell_keys(WF) == []


def test_hello_timer_uses_logical_time_and_counts_fired_timers(
        built_examples: Path, make_world: MakeWorld) -> None:
    """The C timer workflow sets deliver_at from ctx time, and a receipt fires a domain event."""
    w = make_world(built_examples / "hello-timer")
    clock = Clock()
    start = clock.event("demo/TimerStart@1", {"delay_ns": 500, "key": "k1"})
    (intent,) = w.apply(start).intents
    assert intent.params == {"deliver_at_ns": start.stamp.logical_now_ns + 500, "key": "k1"}
    assert intent.grant == "timer"
    res = w.apply(ReceiptRecord(intent.intent_hash, "ok", {"delivered_at_ns": 1, "key": "k1"}, clock.stamp()))
    (fired,) = _effects(res, DomainEventRecord)
    assert fired.value == {"key": "k1"}
    assert w.state("demo/hello-timer@1") == {"started": 1, "fired": 1}


def test_harness_refuses_bad_input_at_the_door_without_journaling(
        make_world: MakeWorld, scripted_doc: Doc) -> None:
    """A refused event or receipt raises SchemaViolation and leaves the journal untouched."""
    h = Harness(make_world(scripted_doc()))
    (intent,) = h.send(SCRIPT, {"effects": [{"effect": "sys/timer.set@1", "params": {"deliver_at_ns": 3}}]}).intents
    size = len(h.journal)
    with pytest.raises(SchemaViolation):
        h.send(SCRIPT, {"delete": 1})
    with pytest.raises(SchemaViolation):
        h.receipt(intent, "sometimes")
    assert len(h.journal) == size
    h.receipt(intent, "ok", {"any": "payload"})
    assert h.world.open_intents() == () and len(h.journal) == size + 2


def test_secret_params_must_name_a_declared_secret(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """A `secret` param admits only names the manifest declares; the value never enters the journal."""
    w = make_world(scripted_doc())
    llm = {"effect": "sys/llm.generate@1", "params": {"provider": "anthropic", "max_tokens": 10}}
    ok = dict(llm, params={**llm["params"], "api_key": "ANTHROPIC_API_KEY"})
    bad = dict(llm, params={**llm["params"], "api_key": "sk-live-123"})
    res = w.apply(Clock().event(SCRIPT, {"effects": [ok, bad]}))
    (intent,) = res.intents
    assert intent.params["api_key"] == "ANTHROPIC_API_KEY"
    (rej,) = [r for r in res.records if isinstance(r, EffectRejectedRecord)]
    assert rej.code == "SchemaViolation" and "not a declared secret" in rej.reason
