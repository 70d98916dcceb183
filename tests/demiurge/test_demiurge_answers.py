"""The Demiurge answers questions about a world's state, schemas and history from what its tools read.

The model is a reactive policy: it reads the overview, then the states and
cells the overview names, the schemas of the manifest, the journal and the
manifest history, and builds its answer from those tool results only. The
test checks the answer against the world itself (through the client API), so
a read tool that returned anything else would fail it.
"""

from __future__ import annotations

import json

from aos.kernel.client import Connection, run
from demikit import UNIVERSE, Conversation, bundle, call


def _setup(dk) -> dict:
    """A counter world with events, cells and one applied manifest change; what the test knows of it."""
    doc, wasm = bundle("counter")

    async def main() -> dict:
        async with await Connection.open(dk.kernel.address) as conn:
            worlds = await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)
            world, _ = await worlds.create(doc, wasm, "counter")
            for by in (2, 3, 4):
                await world.send("demo/CounterEvent@1", {"by": by})
            for key, by in (("a", 5), ("b", 7), ("a", 1)):
                await world.send("demo/CellEvent@1", {"by": by, "id": key})
            p = await world.propose({"ops": [{"op": "add", "section": "schemas", "name": "demo/Note@1",
                                              "value": {"record": {"text": "text"}}}]}, "a schema for notes")
            await world.shadow(p["proposal"])
            await world.approve(p["proposal"])
            await world.apply(p["proposal"])
            return {"count": (await world.state("demo/counter@1"))["count"],
                    "cells": {k: (await world.state("demo/cells@1", k))["count"] for k in await world.cells("demo/cells@1")},
                    "schemas": sorted((await world.manifest())["manifest"]["schemas"]),
                    "history": await world.governance()}

    return run(main())


def answer_from_reads(conv: Conversation):
    """Read the overview, then what it names; answer with the values read."""
    overview = conv.last("world_overview")
    if overview is None:
        return [call("world_overview")]
    o = overview.json()
    keyed = [w["name"] for w in o["workflows"] if w["keyed"]]
    plain = [w["name"] for w in o["workflows"] if not w["keyed"]]
    if conv.last("list_cells") is None:
        return [call("read_state", workflow=w) for w in plain] + [call("list_cells", workflow=w) for w in keyed]
    cells = conv.last("list_cells").json()
    read_keys = {u.input.get("key") for u in conv.all("read_state") if u.input.get("workflow") == cells["workflow"]}
    todo = [k for k in cells["keys"] if k not in read_keys]
    if todo:
        return [call("read_state", workflow=cells["workflow"], key=k) for k in todo]
    if conv.last("read_manifest") is None:
        return [call("read_manifest", section="schemas"), call("manifest_history"),
                call("search_journal", kinds=["event"], limit=100)]
    states = {}
    for u in conv.all("read_state"):
        s = u.json()
        states[(s["workflow"], s["key"])] = s["state"]
    history = conv.last("manifest_history").json()
    schemas = sorted(conv.last("read_manifest").json()["schemas"])
    events = conv.last("search_journal").json()
    change = history["history"][-1]
    return json.dumps({
        "count": states[("demo/counter@1", None)]["count"],
        "cells": {k: states[(cells["workflow"], k)]["count"] for k in cells["keys"]},
        "schemas": schemas, "events": events["matches"],
        "changes": [{"op": c["op"], "proposal": c["proposal"], "after": c["after"]} for c in history["history"]],
        "reason": next(p["reason"] for p in history["proposals"] if p["id"] == change["proposal"]),
    })


def test_it_answers_about_state_schemas_and_history_from_what_it_reads(dk):
    """The answer holds the real count, cell values, schemas, event count and manifest change of the world."""
    truth = _setup(dk)
    dk.think(answer_from_reads)
    result = dk.demiurge("counter", "What are the counters, the schemas, and how did the manifest change?")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    said = json.loads(result.final_text())
    assert said["count"] == truth["count"] == 9
    assert said["cells"] == truth["cells"] == {"a": 6, "b": 7}
    assert said["schemas"] == truth["schemas"] and "demo/Note@1" in said["schemas"]
    assert said["events"] == 6
    change = truth["history"]["history"][0]
    assert said["changes"] == [{"op": "apply", "proposal": "p1", "after": change["after"]}]
    assert said["reason"] == "a schema for notes"
    # every read went through the kernel effect of its tool, under the read grant
    tools = {e["tool_name"] for e in result.tool_ends()}
    assert {"world_overview", "read_state", "list_cells", "read_manifest", "manifest_history",
            "search_journal"} <= tools
    assert not any(e["is_error"] for e in result.tool_ends())


def test_without_a_grant_it_can_only_read_and_says_so(dk):
    """Asked to change the manifest with no governance grant, its proposal is refused by the kernel and it says so."""
    _setup(dk)

    def policy(conv: Conversation):
        if conv.last("propose_patch") is None:
            return [call("propose_patch", patch={"ops": [{"op": "remove", "section": "routing", "value": {
                "event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}}]}, reason="asked to")]
        refusal = conv.last("propose_patch")
        assert refusal.is_error, refusal.output
        return f"I cannot change world counter: {refusal.output}"

    dk.think(policy)
    result = dk.demiurge("counter", "Stop routing counter events to the Python counter.")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    end = result.tool_ends("propose_patch")[0]
    assert end["is_error"] and "no governance grant" in end["output"]
    assert "I cannot change world counter" in result.final_text()
    assert "You do NOT hold: governance" in dk.brain.seen[0].system

    async def proposals() -> list:
        async with await Connection.open(dk.kernel.address) as conn:
            world = await (await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)).open("counter")
            return (await world.governance())["proposals"]

    assert [p["id"] for p in run(proposals())] == ["p1"]  # only the setup's: nothing was proposed


def test_aos_shell_reaches_the_demiurge_from_inside_a_world(dk):
    """In aos-shell, ``demiurge TEXT`` inside a world asks its Demiurge and shows the answer it built from a read."""
    import os
    import subprocess
    import sys

    _setup(dk)

    def policy(conv: Conversation):
        if conv.last("read_state") is None:
            return [call("read_state", workflow="demo/counter@1")]
        return f"demo/counter@1 holds {conv.last('read_state').json()['state']['count']}"

    dk.think(policy)
    done = subprocess.run([sys.executable, "-m", "aos.shell", "--connect", dk.kernel.address, "--token-file",
                           dk.kernel.token_path, "--universe", UNIVERSE, "-c",
                           "world counter; demiurge how much does the counter hold?"],
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert "made dm-counter, the Demiurge of counter (grants: none: it reads)" in done.stdout
    assert "> read_state" in done.stdout and "demo/counter@1 holds 9" in done.stdout
    assert dk.brain.errors == []
