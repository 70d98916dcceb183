"""The Demiurge changes a world's manifest through governance: shadow first, then approve and apply.

The policies read the manifest to build their patch (the module and schema
names come from it), take the proposal id from the propose result, and decide
from the shadow report whether to approve. A bad patch (a workflow whose
state schema the module's output does not fit) is caught by the shadow run:
the kernel refuses to approve it, the policy rejects it, fixes the patch and
applies the fixed one. The tests check the world afterwards through the client.
"""

from __future__ import annotations

import json

from aos.kernel.client import Connection, run
from demikit import UNIVERSE, Conversation, bundle, call


def _world(dk, events=(1, 2, 3)) -> None:
    doc, wasm = bundle("counter")

    async def main() -> None:
        async with await Connection.open(dk.kernel.address) as conn:
            worlds = await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)
            world, _ = await worlds.create(doc, wasm, "counter")
            for by in events:
                await world.send("demo/CounterEvent@1", {"by": by})

    run(main())


async def _open(dk):
    conn = await Connection.open(dk.kernel.address)
    worlds = await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)
    return conn, await worlds.open("counter")


def _copy_patch(manifest: dict, name: str, state: str) -> dict:
    """A second counter on the Python module, routed the counter's events (names read from the manifest)."""
    py = next(n for n, m in manifest["modules"].items() if m["runtime"] == "python")
    event = next(w["event"] for w in manifest["workflows"].values() if w["module"] == py)
    ops = []
    if state not in manifest["schemas"]:
        ops.append({"op": "add", "section": "schemas", "name": state, "value": {"record": {"total": "int"}}})
    ops += [{"op": "add", "section": "workflows", "name": name, "value": {"module": py, "state": state, "event": event}},
            {"op": "add", "section": "routing", "value": {"event": event, "workflow": name}}]
    return {"ops": ops}


def governed(conv: Conversation, first_state: str):
    """Read, propose, shadow; approve and apply a clean report, else reject, fix the state schema and go again."""
    manifest = conv.last("read_manifest")
    if manifest is None:
        return [call("read_manifest")]
    doc = manifest.json()["manifest"]
    last = conv.newest
    if last.name == "read_manifest":
        return [call("propose_patch", patch=_copy_patch(doc, "demo/tally@1", first_state), reason="a second tally")]
    if last.name == "propose_patch":
        assert not last.is_error, last.output
        return [call("shadow_patch", proposal=last.json()["proposal"])]
    if last.name == "shadow_patch":
        report = last.json()
        if report["ok"]:
            return [call("approve_patch", proposal=report["proposal"], reason="shadow run clean")]
        return [call("approve_patch", proposal=report["proposal"], reason="try anyway")]  # the kernel must refuse
    if last.name == "approve_patch" and last.is_error:
        rejected = conv.last("shadow_patch").json()["proposal"]
        return [call("reject_patch", proposal=rejected, reason=last.output)]
    if last.name == "reject_patch":
        state = next(w["state"] for w in doc["workflows"].values() if w["module"].endswith("py@1"))
        return [call("propose_patch", patch=_copy_patch(doc, "demo/tally@1", state), reason="fixed state schema")]
    if last.name == "approve_patch":
        return [call("apply_proposal", proposal=last.json()["proposal"])]
    if last.name == "apply_proposal":
        return [call("manifest_history")]
    applied = last.json()["history"][-1]
    return f"applied {applied['proposal']}: the world runs {applied['after']}"


def test_it_shadows_then_applies_a_change_and_the_world_uses_it(dk):
    """A clean patch is shadowed, approved and applied in that order, and later events reach the new workflow."""
    _world(dk)
    dk.think(lambda conv: governed(conv, "demo/CounterState@1"))
    result = dk.demiurge("counter", "Add a second tally of the counter events.", "governance")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    order = [e["tool_name"] for e in result.tool_ends()]
    assert order == ["read_manifest", "propose_patch", "shadow_patch", "approve_patch", "apply_proposal",
                     "manifest_history"]
    report = json.loads(result.tool_ends("shadow_patch")[0]["output"])
    assert report["ok"] and report["events"] == 3
    # the shadow run showed what the new workflow would have made of the recent events
    assert {"workflow": "demo/tally@1", "key": None, "before": None, "after": {"count": 6}} in report["state_changes"]

    async def after() -> tuple:
        conn, world = await _open(dk)
        async with conn:
            manifest = (await world.manifest())["manifest"]
            await world.send("demo/CounterEvent@1", {"by": 10})
            return manifest, await world.state("demo/tally@1"), await world.governance()

    manifest, tally, history = run(after())
    assert "demo/tally@1" in manifest["workflows"]
    assert tally == {"count": 10}  # the live world took only the event after the change
    assert [(c["op"], c["proposal"]) for c in history["history"]] == [("apply", "p1")]
    assert result.final_text() == f"applied p1: the world runs {history['manifest']}"


def test_a_bad_patch_is_caught_by_the_shadow_run_and_the_fixed_one_is_applied(dk):
    """A state schema the module breaks traps in the shadow run; approve is refused; the fix goes through."""
    _world(dk)
    dk.think(lambda conv: governed(conv, "demo/TallyState@1"))
    result = dk.demiurge("counter", "Add a second tally of the counter events.", "governance")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    first = json.loads(result.tool_ends("shadow_patch")[0]["output"])
    assert not first["ok"]
    kinds = {p["kind"] for p in first["problems"]}
    assert kinds == {"schema_violation"} and all(p["workflow"] == "demo/tally@1" for p in first["problems"])
    refused = result.tool_ends("approve_patch")[0]
    assert refused["is_error"] and "shadow run found" in refused["output"]
    second = json.loads(result.tool_ends("shadow_patch")[1]["output"])
    assert second["ok"] and second["proposal"] == "p2"

    async def after() -> dict:
        conn, world = await _open(dk)
        async with conn:
            return await world.governance()

    history = run(after())
    statuses = {p["id"]: p["status"] for p in history["proposals"]}
    assert statuses == {"p1": "rejected", "p2": "applied"}
    assert history["proposals"][0]["shadow"]["ok"] is False
    assert [(c["op"], c["proposal"]) for c in history["history"]] == [("apply", "p2")]
