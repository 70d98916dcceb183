"""With a universe grant the Demiurge creates another world and drives it; without one it cannot.

The policy lists the worlds, creates a counter world from a manifest it
writes (the Python counter the kernel always allows), sends it events, reads
its state back and reports the count it read. Without the grant the create
is refused at admission and no world appears.
"""

from __future__ import annotations

from aos.kernel.client import Connection, run
from demikit import UNIVERSE, Conversation, bundle, call

COUNTER = {
    "version": 1,
    "schemas": {"demo/CounterState@1": {"record": {"count": "int"}},
                "demo/CounterEvent@1": {"record": {"by": "int", "id": {"option": "text"}}}},
    "modules": {"demo/counter_py@1": {"runtime": "python", "python_module": "aos.kernel.world.examples.counter"}},
    "workflows": {"demo/counter@1": {"module": "demo/counter_py@1", "state": "demo/CounterState@1",
                                     "event": "demo/CounterEvent@1"}},
    "routing": [{"event": "demo/CounterEvent@1", "workflow": "demo/counter@1"}],
}


def orchestrator(conv: Conversation):
    last = conv.newest
    if last is None:
        return [call("list_worlds")]
    if last.name == "list_worlds":
        if last.is_error:
            return [call("create_world", world_id="tally", manifest=COUNTER)]  # try anyway: the kernel decides
        taken = {w["world"] for w in last.json()["worlds"]}
        assert "tally" not in taken
        return [call("create_world", world_id="tally", manifest=COUNTER, name="a tally the demiurge made")]
    if last.name == "create_world":
        if last.is_error:
            return f"I cannot create worlds here: {last.output}"
        return [call("send_event", world="tally", schema="demo/CounterEvent@1", value={"by": 4})]
    if last.name == "send_event":
        assert not last.is_error, last.output
        if len(conv.all("send_event")) < 2:
            return [call("send_event", world="tally", schema="demo/CounterEvent@1", value={"by": 38})]
        return [call("read_state", world="tally", workflow="demo/counter@1")]
    count = last.json()["state"]["count"]
    return f"world tally counts {count}"


def _setup(dk) -> None:
    doc, wasm = bundle("counter")

    async def main() -> None:
        async with await Connection.open(dk.kernel.address) as conn:
            worlds = await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)
            await worlds.create(doc, wasm, "counter")

    run(main())


async def _worlds(dk) -> dict:
    async with await Connection.open(dk.kernel.address) as conn:
        worlds = await (await conn.restore_kernel(dk.kernel.admin_token)).worlds(UNIVERSE)
        listed = {w["worldId"]: w for w in await worlds.list()}
        state = await (await worlds.open("tally")).state("demo/counter@1") if "tally" in listed else None
        return {"ids": set(listed), "tally": state}


def test_with_a_universe_grant_it_creates_and_drives_another_world(dk):
    """It creates world tally, sends it two events, and reports the count the world really holds."""
    _setup(dk)
    dk.think(orchestrator)
    result = dk.demiurge("counter", "Make a tally world, count 4 and 38 in it, and tell me the total.", "universe")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    after = run(_worlds(dk))
    assert "tally" in after["ids"] and after["tally"] == {"count": 42}
    assert result.final_text() == "world tally counts 42"
    assert [e["tool_name"] for e in result.tool_ends()] == ["list_worlds", "create_world", "send_event",
                                                           "send_event", "read_state"]


def test_without_a_universe_grant_it_cannot_create_a_world(dk):
    """Without the grant, listing and creating are refused by the kernel, no world appears, and it says so."""
    _setup(dk)
    dk.think(orchestrator)
    result = dk.demiurge("counter", "Make a tally world, count 4 and 38 in it, and tell me the total.")
    assert result.returncode == 0, result.stderr[-2000:]
    assert dk.brain.errors == []
    ends = result.tool_ends()
    assert [e["tool_name"] for e in ends] == ["list_worlds", "create_world"]
    assert all(e["is_error"] and "no universe grant" in e["output"] for e in ends)
    assert result.final_text().startswith("I cannot create worlds here")
    assert "tally" not in run(_worlds(dk))["ids"]
