"""The Demiurge writes a module, compiles it, fixes a compile error from the diagnostics, and integrates it.

The policy's first draft of a C workflow has an error. It compiles it in its
workspace (``sys/module.compile@1``, clang in the sandbox), reads the
diagnostics, inserts what clang says is missing at the line and column
clang names, compiles again, commits, and proposes a patch that adds the
module by the hash the compiler returned, a workflow on it and a route;
shadow, approve, apply. The test then sends an event and the world runs the
new module.
"""

from __future__ import annotations

import json
import re

from aos.kernel.client import Connection, run
from demikit import UNIVERSE, Conversation, bundle, call

# counter.c, counting twice what it is sent; the draft lacks the semicolon after the addition
DOUBLE_C = """/* demo/double@1: counts twice the `by` of each demo/CounterEvent@1. */
#include "aos_wf.h"

__attribute__((export_name("step"))) i64 step(u8 *in, u32 len) {
    rd r = { in, in + len };
    if (len >= 3 && in[0] == 0xd9 && in[1] == 0xd9 && in[2] == 0xf7) r.p += 3;
    rd state, cnt, event, value, by_r;
    i64 count = 0, by = 0;
    if (rd_get(r, "state", &state) && !rd_is_null(state) && rd_get(state, "count", &cnt))
        rd_int(cnt, &count);
    if (!rd_get(r, "event", &event) || !rd_get(event, "value", &value) ||
        !rd_get(value, "by", &by_r) || !rd_int(by_r, &by))
        __builtin_trap();
    count += 2 * by
    wr w = wr_new(64);
    wr_head(&w, 5, 1);
    wr_text(&w, "state");
    if (count == 0) {
        wr_null(&w);
    } else {
        wr_head(&w, 5, 1);
        wr_text(&w, "count");
        wr_int(&w, count);
    }
    return wr_done(&w);
}
"""
DIAGNOSTIC = re.compile(r"^(?P<file>[\w.]+):(?P<line>\d+):(?P<col>\d+): error: expected '(?P<want>.)'", re.M)


def _fix(source: str, diagnostics: str) -> str:
    """Insert what clang says it expected at the line and column it names."""
    found = DIAGNOSTIC.search(diagnostics)
    assert found, f"no diagnostic this policy can fix: {diagnostics}"
    lines = source.split("\n")
    n, col = int(found["line"]) - 1, int(found["col"]) - 1
    lines[n] = lines[n][:col] + found["want"] + lines[n][col:]
    return "\n".join(lines)


def module_builder(conv: Conversation):
    last = conv.newest
    if last is None:
        return [call("read_manifest")]
    if last.name == "read_manifest":
        return [call("workspace_write", path="double.c", content=DOUBLE_C)]
    if last.name == "workspace_write":
        return [call("compile_module", language="c")]
    if last.name == "compile_module":
        out = last.output
        if out.startswith("compile failed"):
            return [call("workspace_read", path="double.c")]
        module = re.search(r"module (sha256:[0-9a-f]{64})", out).group(1)
        return [call("workspace_commit", message=f"demo/double@1 as {module}")]
    if last.name == "workspace_read":
        diagnostics = conv.last("compile_module").output
        return [call("workspace_write", path="double.c", content=_fix(last.output, diagnostics))]
    if last.name == "workspace_commit":
        doc = conv.last("read_manifest").json()["manifest"]
        counter = doc["workflows"]["demo/counter@1"]
        module = re.search(r"module (sha256:[0-9a-f]{64})", conv.last("compile_module").output).group(1)
        patch = {"ops": [
            {"op": "add", "section": "modules", "name": "demo/double_wasm@1", "value": {"runtime": "wasm", "hash": module}},
            {"op": "add", "section": "workflows", "name": "demo/double@1",
             "value": {"module": "demo/double_wasm@1", "state": counter["state"], "event": counter["event"]}},
            {"op": "add", "section": "routing", "value": {"event": counter["event"], "workflow": "demo/double@1"}},
        ]}
        return [call("propose_patch", patch=patch, reason="a doubling counter, compiled from double.c")]
    if last.name == "propose_patch":
        return [call("shadow_patch", proposal=last.json()["proposal"])]
    if last.name == "shadow_patch":
        report = last.json()
        assert report["ok"], report["problems"]
        return [call("approve_patch", proposal=report["proposal"])]
    if last.name == "approve_patch":
        return [call("apply_proposal", proposal=last.json()["proposal"])]
    return f"world counter now runs demo/double@1: {last.output}"


def test_it_writes_compiles_fixes_and_integrates_a_module(dk):
    """The draft fails to compile, the fix from the diagnostics compiles, and the applied module runs in the world."""
    doc, wasm = bundle("counter")

    async def setup() -> None:
        async with await Connection.open(dk.kernel.address) as conn:
            worlds = await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)
            world, _ = await worlds.create(doc, wasm, "counter")
            await world.send("demo/CounterEvent@1", {"by": 2})

    run(setup())
    dk.think(module_builder)
    result = dk.demiurge("counter", "Add a workflow that counts twice what it is sent, in C.",
                         "governance", "workspace", "compile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    compiles = result.tool_ends("compile_module")
    assert len(compiles) == 2
    assert compiles[0]["output"].startswith("compile failed") and "double.c:14:20: error: expected ';'" in \
        compiles[0]["output"]
    module = re.search(r"module (sha256:[0-9a-f]{64})", compiles[1]["output"]).group(1)
    report = json.loads(result.tool_ends("shadow_patch")[0]["output"])
    assert {"workflow": "demo/double@1", "key": None, "before": None, "after": {"count": 4}} in report["state_changes"]

    async def after() -> tuple:
        async with await Connection.open(dk.kernel.address) as conn:
            admin = await conn.restore_kernel(dk.kernel.admin_token)
            world = await (await admin.worlds(UNIVERSE)).open("counter")
            await world.send("demo/CounterEvent@1", {"by": 5})
            manifest = (await world.manifest())["manifest"]
            cas = await admin.cas(UNIVERSE)
            return (await world.state("demo/double@1"), await world.state("demo/counter@1"), manifest,
                    await cas.get(module))

    double, counter, manifest, module_bytes = run(after())
    assert double == {"count": 10} and counter == {"count": 7}
    assert manifest["modules"]["demo/double_wasm@1"] == {"runtime": "wasm", "hash": module}
    assert module_bytes[:4] == b"\0asm"
    # the fixed source is committed in the workspace
    commits = result.tool_ends("workspace_commit")
    assert len(commits) == 1 and "committed sha256:" in commits[0]["output"]
