"""Replay: genesis vs snapshot + tail, golden journals, tampering, crash tails."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aos.kernel.world import (
    EffectIntentRecord,
    EventRecord,
    NondeterminismError,
    ReceiptRecord,
    Record,
    Replayer,
    SnapshotError,
    SnapshotRecord,
    World,
    cbor,
    decode_record,
    load_bundle,
    load_runtimes,
    parse_manifest,
    replay,
)
from aos.kernel.world.testing import Clock

MakeWorld = Callable[..., World]
Doc = Callable[..., dict[str, Any]]
SCRIPT = "test/Script@1"
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _drive(w: World, journal: list[Record], rec: Any) -> Any:
    """What a driver does: journal the input, apply it, journal what it derived."""
    journal.append(rec)
    res = w.apply(rec)
    journal.extend(res.records)
    return res


def _scenario(w: World) -> tuple[list[Record], int, bytes]:
    """A run with cells, effects, refusals, receipts, domain events and a snapshot;
    returns the journal, the index of the snapshot marker and the snapshot bytes."""
    j: list[Record] = []
    c = Clock()
    timer = {"effect": "sys/timer.set@1", "params": {"deliver_at_ns": 77}}
    get = {"effect": "sys/http.request@1", "params": {"method": "GET", "url": "https://example.com/"}}
    (ta,) = _drive(w, j, c.event(SCRIPT, {"id": "a", "effects": [timer]})).intents
    tb, gb = _drive(w, j, c.event(SCRIPT, {"id": "b", "effects": [timer, get, {"effect": "sys/x@1", "params": 1}]})).intents
    _drive(w, j, c.event(SCRIPT, {"id": "c", "emit": [{"schema": "demo/CounterEvent@1", "value": {"by": 2}}]}))
    _drive(w, j, ReceiptRecord(tb.intent_hash, "ok", {"at": 77}, c.stamp()))
    _drive(w, j, c.event(SCRIPT, {"id": "c", "trap": True}))
    snap = w.snapshot()
    mark = len(j)
    _drive(w, j, w.snapshot_record())
    _drive(w, j, ReceiptRecord(ta.intent_hash, "error", "boom", c.stamp()))
    _drive(w, j, c.event(SCRIPT, {"id": "a", "delete": True}))
    _drive(w, j, c.event("demo/CounterEvent@1", {"by": -1}))
    assert [i.intent_hash for i in w.open_intents()] == [gb.intent_hash]
    return j, mark, snap


def test_replay_from_genesis_and_from_snapshot_give_identical_bytes(
        make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Genesis replay, snapshot + tail replay and the live run end in byte-identical snapshots."""
    doc = scripted_doc(keyed=True)
    live = make_world(doc)
    journal, mark, snap = _scenario(live)
    from_genesis = make_world(doc)
    assert replay(from_genesis, journal) == ()
    restored = World.restore(from_genesis.manifest, from_genesis.runtimes, "world-1", snap)
    assert replay(restored, journal[mark:]) == ()
    assert from_genesis.snapshot() == live.snapshot() == restored.snapshot()
    assert restored.open_intents() == live.open_intents()
    assert restored.state_hash() == live.state_hash()


def test_records_round_trip_through_canonical_bytes(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Every journaled record decodes back to an equal record with equal bytes."""
    journal, _, _ = _scenario(make_world(scripted_doc(keyed=True)))
    kinds = set()
    for rec in journal:
        back = decode_record(rec.encode())
        assert back.encode() == rec.encode()
        kinds.add(rec.kind)
    assert kinds == {"event", "receipt", "snapshot", "domain_event", "effect_intent", "effect_rejected", "trap",
                     "state"}


@pytest.mark.parametrize("tamper", ["event value", "intent params", "dropped derived", "extra derived",
                                    "reordered inputs", "snapshot hash"])
def test_tampered_journal_raises_nondeterminism(make_world: MakeWorld, scripted_doc: Doc, tamper: str) -> None:
    """Any edit to a journal (input, derived record, order, snapshot marker) fails replay loudly."""
    doc = scripted_doc(keyed=True)
    journal, mark, _ = _scenario(make_world(doc))
    j = list(journal)
    first_event = next(i for i, r in enumerate(j) if isinstance(r, EventRecord))
    first_intent = next(i for i, r in enumerate(j) if isinstance(r, EffectIntentRecord))
    if tamper == "event value":
        j[first_event] = replace(j[first_event], value={"id": "a"})  # type: ignore[type-var]
    elif tamper == "intent params":
        j[first_intent] = replace(j[first_intent], params={"deliver_at_ns": 1})  # type: ignore[type-var]
    elif tamper == "dropped derived":
        del j[first_intent]
    elif tamper == "extra derived":
        j.insert(first_intent, j[first_intent])
    elif tamper == "reordered inputs":
        inputs = [i for i, r in enumerate(j) if isinstance(r, EventRecord)]
        j[inputs[0]], j[inputs[1]] = j[inputs[1]], j[inputs[0]]
    else:
        j[mark] = SnapshotRecord("sha256:" + "2" * 64, j[mark].seq)  # type: ignore[union-attr]
    with pytest.raises(NondeterminismError):
        replay(make_world(doc), j)


def test_crash_before_derived_records_are_durable_is_recovered(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """If the journal ends right after an input, finish() returns exactly the missing derived records."""
    doc = scripted_doc(keyed=True)
    journal, _, _ = _scenario(make_world(doc))
    last_input = max(i for i, r in enumerate(journal) if r.input)
    r = Replayer(make_world(doc))
    for rec in journal[: last_input + 1]:
        r.feed(rec)
    assert [x.encode() for x in r.finish()] == [x.encode() for x in journal[last_input + 1:]]


def test_snapshot_refuses_a_different_manifest(make_world: MakeWorld, scripted_doc: Doc) -> None:
    """Restoring a snapshot under another manifest (or world id) is an error, not a silent mix."""
    w = make_world(scripted_doc())
    other = parse_manifest(scripted_doc(grants={}))
    with pytest.raises(SnapshotError):
        World.restore(other, w.runtimes, "world-1", w.snapshot())
    with pytest.raises(SnapshotError):
        World.restore(w.manifest, w.runtimes, "world-2", w.snapshot())


# --- golden journal ---------------------------------------------------------------------------------

GOLDEN_FILE = GOLDEN / "hello_timer.journal.cbor"


def _timer_world(cache: Any) -> World:
    # the committed artifact, not a rebuild: the golden pins these exact module bytes
    m, wasm = load_bundle(EXAMPLES / "hello-timer")
    return World(m, load_runtimes(m, wasm, cache), "golden-world")


def _timer_journal(w: World) -> list[Record]:
    j: list[Record] = []
    c = Clock()
    (i1,) = _drive(w, j, c.event("demo/TimerStart@1", {"delay_ns": 10, "key": "one"})).intents
    (i2,) = _drive(w, j, c.event("demo/TimerStart@1", {"delay_ns": 20, "key": "two"})).intents
    _drive(w, j, ReceiptRecord(i2.intent_hash, "ok", {"delivered_at_ns": 5, "key": "two"}, c.stamp()))
    _drive(w, j, w.snapshot_record())
    _drive(w, j, ReceiptRecord(i1.intent_hash, "timeout", None, c.stamp()))
    return j


def test_golden_journal_replays_to_the_recorded_state_hash(cache: Any) -> None:
    """The committed hello-timer journal replays (with the committed module) to its recorded hash."""
    if os.environ.get("AOS_REGEN_GOLDEN"):
        w = _timer_world(cache)
        j = _timer_journal(w)
        GOLDEN.mkdir(exist_ok=True)
        GOLDEN_FILE.write_bytes(cbor.encode({"records": [r.encode() for r in j], "state_hash": w.state_hash()}))
    golden = cbor.decode(GOLDEN_FILE.read_bytes())
    records = [decode_record(b) for b in golden["records"]]
    w = _timer_world(cache)
    assert replay(w, records) == ()
    assert w.state_hash() == golden["state_hash"]
    assert w.state("demo/hello-timer@1") == {"started": 2, "fired": 1}
    # and the live run today still produces the same journal
    assert [r.encode() for r in _timer_journal(_timer_world(cache))] == golden["records"]


def test_golden_journal_with_a_tampered_receipt_fails(cache: Any) -> None:
    """Changing one receipt's status in the golden journal raises NondeterminismError."""
    golden = cbor.decode(GOLDEN_FILE.read_bytes())
    records = [decode_record(b) for b in golden["records"]]
    i = next(k for k, r in enumerate(records) if isinstance(r, ReceiptRecord))
    records[i] = replace(records[i], status="error")  # type: ignore[type-var]
    with pytest.raises(NondeterminismError):
        replay(_timer_world(cache), records)
