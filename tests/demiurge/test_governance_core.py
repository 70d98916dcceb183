"""The sans-IO governance core: patches, diffs, the proposal state machine, manifest switches and shadow runs.

No kernel here: worlds run in ``aos.kernel.world.testing.Harness``; the
governance records are built as the host builds them.
"""

from __future__ import annotations

import copy

import pytest

from aos.kernel.world import World, load_runtimes, parse_manifest
from aos.kernel.world.governance import (
    GovernanceState,
    PatchRejected,
    apply_patch,
    check_authority,
    diff_manifests,
    parse_patch,
    shadow,
)
from aos.kernel.world.loader import read_bundle
from aos.kernel.world.records import EffectIntentRecord, GovernanceRecord, Stamp
from aos.kernel.world.replay import replay
from aos.kernel.world.testing import TEST_PYTHON, Harness
from demikit import EXAMPLES

ROUTE_PY = {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}


def counter():
    doc, wasm = read_bundle(EXAMPLES / "counter")
    return doc, wasm


def _world(doc, wasm, docs=None) -> World:
    m = parse_manifest(doc)
    w = World(m, load_runtimes(m, wasm, python=TEST_PYTHON), "w")
    docs = docs if docs is not None else {}

    def load(rec):
        nm = parse_manifest(docs[rec.body["address"]])
        return nm, load_runtimes(nm, wasm, python=TEST_PYTHON)

    w.manifests = load
    return w


def _rec(op, proposal, body, n=1):
    return GovernanceRecord(op, proposal, body, Stamp(10_000 + n))


def _steps(world: World, new_doc: dict, docs: dict, address="sha256:" + "b" * 64, prev="sha256:" + "a" * 64):
    """The governance records of propose -> shadow -> approve -> apply, door-checked one by one."""
    new = parse_manifest(new_doc)
    docs[address] = new_doc
    records = [
        _rec("propose", "p1", {"base": world.manifest_hash, "manifest": new.hash, "address": address, "summary": [],
                               "by": "t", "reason": ""}),
        _rec("shadow", "p1", {"base": world.manifest_hash, "report": "sha256:" + "c" * 64, "ok": True, "problems": 0,
                              "events": 0}),
        _rec("approve", "p1", {"by": "t", "reason": ""}),
        _rec("apply", "p1", {"prev": world.manifest_hash, "manifest": new.hash, "address": address,
                             "prev_address": prev, "by": "t"}),
    ]
    return new, records


def test_a_patch_adds_replaces_and_removes_definitions_and_routes():
    """Each operation changes exactly its definition; the diff names them by section."""
    doc, _ = counter()
    patch = parse_patch({"ops": [
        {"op": "add", "section": "schemas", "name": "demo/X@1", "value": "text"},
        {"op": "replace", "section": "workflows", "name": "demo/counter@1",
         "value": {**doc["workflows"]["demo/counter@1"], "entry": "step"}},
        {"op": "remove", "section": "routing", "value": ROUTE_PY},
        {"op": "add", "section": "secrets", "name": "token"},
    ]})
    new = apply_patch(doc, patch)
    assert new["schemas"]["demo/X@1"] == "text" and ROUTE_PY not in new["routing"] and new["secrets"] == ["token"]
    assert doc == counter()[0]  # the original document is untouched
    diff = diff_manifests(parse_manifest(doc), parse_manifest(new))
    assert diff.lines() == ["+ schemas demo/X@1", "- routing demo/CounterEvent@1 -> demo/counter_py@1",
                            "+ secrets token"]  # an identical replace changes nothing


@pytest.mark.parametrize("patch,where", [
    ({"ops": [{"op": "add", "section": "schemas", "name": "demo/CounterState@1", "value": "text"}]}, "exists"),
    ({"ops": [{"op": "remove", "section": "grants", "name": "nope"}]}, "no grants 'nope'"),
    ({"ops": [{"op": "remove", "section": "routing", "value": {"event": "a", "workflow": "b"}}]}, "no route a -> b"),
    ({"ops": [{"op": "replace", "section": "secrets", "name": "s"}]}, "a secret is a name"),
    ({"ops": [{"op": "add", "section": "schemas", "name": "has space", "value": "text"}]}, "without spaces"),
    ({"ops": []}, "non-empty list"),
    ({"ops": [{"op": "add", "section": "schemas", "name": "x", "value": "text"}], "extra": 1}, "unknown field"),
    ({"ops": [{"op": "add", "section": "schemas", "name": "x"}]}, "needs the definition"),
])
def test_bad_patches_are_refused_with_the_path_of_the_problem(patch, where):
    """A patch that does not fit the manifest or is malformed is ``PatchRejected`` saying where."""
    doc, _ = counter()
    with pytest.raises(PatchRejected, match=where):
        apply_patch(doc, parse_patch(patch))


def test_authority_keeps_governance_grants_and_limits_grant_kinds():
    """Governance and universe grants never change through a patch; a proposer limited to kinds keeps to them."""
    doc, _ = counter()
    base = copy.deepcopy(doc)
    base["grants"] = {"gov": {"cap": "governance", "params": {"worlds": ["."], "ops": ["apply"]}}}
    old = parse_manifest(base)
    for patch in ({"ops": [{"op": "remove", "section": "grants", "name": "gov"}]},
                  {"ops": [{"op": "add", "section": "grants", "name": "u", "value": {"cap": "universe",
                                                                                     "params": {"ops": ["create"]}}}]}):
        new = parse_manifest(apply_patch(base, parse_patch(patch)))
        with pytest.raises(PatchRejected, match="who governs a world"):
            check_authority(diff_manifests(old, new), old, new)
    timer = parse_manifest(apply_patch(base, parse_patch({"ops": [{"op": "add", "section": "grants", "name": "t",
                                                                   "value": {"cap": "timer"}}]})))
    check_authority(diff_manifests(old, timer), old, timer)  # any kind, for a client
    check_authority(diff_manifests(old, timer), old, timer, ["timer"])
    with pytest.raises(PatchRejected, match="these kinds only: blob"):
        check_authority(diff_manifests(old, timer), old, timer, ["blob"])


def test_the_state_machine_wants_a_clean_shadow_before_approve_and_approve_before_apply():
    """Approve without a shadow, approve after a failed shadow, apply before approve, and stale bases are refused."""
    doc, wasm = counter()
    world = _world(doc, wasm)
    h = world.manifest_hash
    gov = world.governance
    propose = _rec("propose", "p1", {"base": h, "manifest": h, "address": "x", "summary": [], "by": "", "reason": ""})
    assert gov.check(_rec("propose", "p7", propose.body), h) == "the next proposal is p1, not 'p7'"
    assert gov.check(propose, "sha256:" + "0" * 64).startswith("the proposal is for manifest")
    gov.record(propose, 0)
    assert "shadow it first" in gov.check(_rec("approve", "p1", {"by": "", "reason": ""}), h)
    assert "only an approved proposal" in gov.check(_rec("apply", "p1", {"prev": h, "manifest": h, "address": "x",
                                                                          "prev_address": "y"}), h)
    gov.record(_rec("shadow", "p1", {"base": h, "report": "r", "ok": False, "problems": 2, "events": 5}), 0)
    assert "found 2 problem(s)" in gov.check(_rec("approve", "p1", {"by": "", "reason": ""}), h)
    gov.record(_rec("shadow", "p1", {"base": h, "report": "r", "ok": True, "problems": 0, "events": 5}), 0)
    assert gov.check(_rec("approve", "p1", {"by": "", "reason": ""}), "sha256:" + "1" * 64).endswith(
        "propose the change again on the current manifest")
    assert gov.check(_rec("approve", "p1", {"by": "", "reason": ""}), h) is None
    assert gov.check(_rec("approve", "p9", {"by": "", "reason": ""}), h).startswith("no proposal 'p9'")
    assert gov.check(_rec("rollback", "", {"prev": h, "manifest": "sha256:" + "2" * 64, "address": "z",
                                           "prev_address": "x"}), h).endswith("(see its history)")


def test_apply_switches_the_manifest_and_replay_switches_at_the_same_record():
    """Through a Harness: apply drops the removed workflow's cell, and a replay of the journal derives the same."""
    doc, wasm = counter()
    docs: dict = {}
    world = _world(doc, wasm, docs)
    h = Harness(world)
    h.send("demo/CounterEvent@1", {"by": 4})
    h.send("demo/CellEvent@1", {"by": 1, "id": "k"})
    new_doc = apply_patch(doc, parse_patch({"ops": [
        {"op": "remove", "section": "routing", "value": {"event": "demo/CellEvent@1", "workflow": "demo/cells@1"}},
        {"op": "remove", "section": "workflows", "name": "demo/cells@1"}]}))
    new, records = _steps(world, new_doc, docs)
    for r in records:
        assert world.check_governance(r) is None
        h.journal.append(r)
        res = world.apply(r)
        assert res.status == "ok", res.error
        h.journal.extend(res.records)
    assert world.manifest_hash == new.hash and "demo/cells@1" not in world.manifest.workflows
    assert h.journal[-1].changes == (("demo/cells@1", "k", None),)  # the dropped cell, as a state change
    h.send("demo/CounterEvent@1", {"by": 1})
    fresh = _world(doc, wasm, docs)
    assert replay(fresh, h.journal) == ()
    assert fresh.snapshot() == world.snapshot()
    restored = World.restore(new, world.runtimes, "w", world.snapshot())
    assert restored.governance.to_value() == world.governance.to_value()


def test_a_switch_that_does_not_fit_the_state_or_an_effect_in_flight_is_refused():
    """State the new schema refuses, and an effect in flight whose declaration a change drops, are problems."""
    doc, wasm = counter()
    world = _world(doc, wasm)
    Harness(world).send("demo/CounterEvent@1", {"by": 4})
    narrowed = apply_patch(doc, parse_patch({"ops": [{"op": "replace", "section": "schemas",
                                                      "name": "demo/CounterState@1",
                                                      "value": {"record": {"count": "int", "label": "text"}}}]}))
    problems = world.manifest_problems(parse_manifest(narrowed))
    assert problems and "does not fit demo/CounterState@1 any more" in problems[0]
    # an effect in flight: the scripted test workflow emits a timer whose declaration a change would drop
    from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

    sdoc = {"version": 1, "schemas": {**SCRIPTED_SCHEMAS, "sys/TimerSetParams@1": {"record": {
        "deliver_at_ns": "nat", "key": {"option": "text"}}}, "sys/TimerReceipt@1": "any"},
        "modules": {"m@1": {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {"test/s@1": {"module": "m@1", "entry": "scripted", "state": "test/ScriptState@1",
                                   "event": "test/Script@1", "effects": ["sys/timer.set@1"]}},
        "effects": {"sys/timer.set@1": {"params": "sys/TimerSetParams@1", "receipt": "sys/TimerReceipt@1",
                                        "cap": "timer"}},
        "grants": {"t": {"cap": "timer"}}, "routing": [{"event": "test/Script@1", "workflow": "test/s@1"}]}
    sworld = _world(sdoc, {})
    res = Harness(sworld).send("test/Script@1", {"effects": [{"effect": "sys/timer.set@1",
                                                              "params": {"deliver_at_ns": 5}}]})
    assert any(isinstance(r, EffectIntentRecord) for r in res.records)
    dropped = apply_patch(sdoc, parse_patch({"ops": [
        {"op": "replace", "section": "workflows", "name": "test/s@1",
         "value": {**sdoc["workflows"]["test/s@1"], "effects": []}}]}))
    problems = sworld.manifest_problems(parse_manifest(dropped))
    assert len(problems) == 1 and "is in flight" in problems[0]


def test_shadow_reports_traps_refusals_state_and_effects_without_touching_the_world():
    """A shadow run on recent events finds the trap a patch causes and leaves the live world's bytes alone."""
    doc, wasm = counter()
    world = _world(doc, wasm)
    h = Harness(world)
    for by in (1, 2, 3):
        h.send("demo/CounterEvent@1", {"by": by})
    events = [r for r in h.journal if r.kind == "event"]
    before = world.snapshot()
    bad_doc = apply_patch(doc, parse_patch({"ops": [
        {"op": "add", "section": "schemas", "name": "demo/T@1", "value": {"record": {"total": "int"}}},
        {"op": "add", "section": "workflows", "name": "demo/t@1",
         "value": {"module": "demo/counter_py@1", "state": "demo/T@1", "event": "demo/CounterEvent@1"}},
        {"op": "add", "section": "routing", "value": {"event": "demo/CounterEvent@1", "workflow": "demo/t@1"}}]}))
    bad = parse_manifest(bad_doc)
    report = shadow(world, bad, load_runtimes(bad, wasm, python=TEST_PYTHON),
                    load_runtimes(world.manifest, wasm, python=TEST_PYTHON), events)
    assert world.snapshot() == before
    assert not report["ok"] and report["events"] == 3
    assert {p["kind"] for p in report["problems"]} == {"schema_violation"} and len(report["problems"]) == 3
    good_doc = apply_patch(doc, parse_patch({"ops": [{"op": "remove", "section": "routing", "value": ROUTE_PY}]}))
    good = parse_manifest(good_doc)
    report = shadow(world, good, load_runtimes(good, wasm, python=TEST_PYTHON),
                    load_runtimes(world.manifest, wasm, python=TEST_PYTHON), events)
    assert report["ok"]
    assert report["state_changes"] == [{"workflow": "demo/counter_py@1", "key": None, "before": {"count": 12},
                                        "after": {"count": 6}}]
    assert report["diff"]["routes_removed"] == [ROUTE_PY]


def test_decided_proposals_are_pruned_oldest_first():
    """Only the last 64 applied or rejected proposals stay in a world's state; open ones always stay."""
    gov = GovernanceState()
    h = "sha256:" + "a" * 64
    for i in range(1, 80):
        gov.record(_rec("propose", f"p{i}", {"base": h, "manifest": h, "address": "x", "summary": [], "by": "",
                                             "reason": ""}), 0)
        if i != 3:
            gov.record(_rec("reject", f"p{i}", {"by": "", "reason": ""}), 0)
    assert len(gov.proposals) == 65 and "p3" in gov.proposals and "p4" not in gov.proposals
    assert gov.next_id() == "p80"
