"""A world whose manifest changed (apply, then rollback) replays byte-identically, from genesis and from snapshots.

The manifest change is a journaled input record naming the manifest by hash
and CAS address; replay switches manifests at that record. The tests replay
the journal of a real kernel's world through a fresh ``World`` offline, from
genesis and from snapshots taken before and between the changes, restart the
kernel (the world wakes from its latest snapshot and keeps going), and show
that a tampered change record is refused as nondeterministic.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest

from aos.kernel.client import Connection, run
from aos.kernel.world import World, cbor, decode_record, load_runtimes, parse_manifest
from aos.kernel.world.errors import NondeterminismError
from aos.kernel.world.governance import SWITCHES
from aos.kernel.world.records import GovernanceRecord
from aos.kernel.world.replay import Replayer, replay
from aos.kernel.world.testing import TEST_PYTHON
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import bundle, raw_journal  # noqa: E402

U = "u"
PATCH = {"ops": [
    {"op": "remove", "section": "routing", "value": {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}},
    {"op": "add", "section": "workflows", "name": "demo/tally@1",
     "value": {"module": "demo/counter_py@1", "state": "demo/CounterState@1", "event": "demo/CounterEvent@1"}},
    {"op": "add", "section": "routing", "value": {"event": "demo/CounterEvent@1", "workflow": "demo/tally@1"}},
]}


async def _history(kernel: KernelProcess) -> dict:
    """Events, a snapshot, an applied change, events, a snapshot, a rollback, events; what replay needs."""
    doc, wasm = bundle("counter")
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        world, _ = await (await admin.worlds(U)).create(doc, wasm, "w")
        for by in (1, 2):
            await world.send("demo/CounterEvent@1", {"by": by})
        await world.send("demo/CellEvent@1", {"by": 3, "id": "a"})
        before = await world.snapshot()
        p = await world.propose(PATCH, "tally instead of the python counter")
        await world.shadow(p["proposal"])
        await world.approve(p["proposal"])
        await world.apply(p["proposal"])
        for by in (10, 20):
            await world.send("demo/CounterEvent@1", {"by": by})
        between = await world.snapshot()
        await world.rollback()
        await world.send("demo/CounterEvent@1", {"by": 100})
        live, _ = await world.snapshot()
        raws = await raw_journal(admin, U, "w")
        cas = await admin.cas(U)
        docs = {}
        for r in map(decode_record, raws):
            if isinstance(r, GovernanceRecord) and r.op in SWITCHES:
                for address in (r.body["address"], r.body["prev_address"]):
                    docs[address] = cbor.decode(await cas.get(address))
        snapshots = {name: (await cas.get(address), seq) for name, (address, seq) in
                     (("before", before), ("between", between))}
        states = {wf: await world.state(wf) for wf in ("demo/counter@1", "demo/counter_py@1")}
        return {"doc": doc, "wasm": wasm, "raws": raws, "docs": docs, "live": live, "snapshots": snapshots,
                "states": states, "tally": p["manifest"]}


def _loader(docs: dict, wasm: dict):
    def load(rec: GovernanceRecord):
        manifest = parse_manifest(docs[rec.body["address"]])
        return manifest, load_runtimes(manifest, wasm, python=TEST_PYTHON)

    return load


def _fresh(doc: dict, wasm: dict, docs: dict, snapshot: bytes | None = None) -> World:
    manifest = parse_manifest(doc)
    runtimes = load_runtimes(manifest, wasm, python=TEST_PYTHON)
    if snapshot is None:
        world = World(manifest, runtimes, "w")
    else:
        held = cbor.decode(snapshot)["manifest"]
        manifest = next(m for m in (parse_manifest(d) for d in [doc, *docs.values()]) if m.hash == held)
        world = World.restore(manifest, load_runtimes(manifest, wasm, python=TEST_PYTHON), "w", snapshot)
    world.manifests = _loader(docs, wasm)
    return world


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("k"))
    kernel = KernelProcess(data).start()
    held = {"kernel": kernel, "data": data}
    try:
        held = run(_history(kernel)) | held
        yield held
    finally:
        held["kernel"].kill()  # the restart test replaces it: kill the one running now


def test_replay_from_genesis_switches_at_the_records_and_ends_identical(history):
    """From genesis, replay derives every journaled record byte for byte across apply and rollback."""
    world = _fresh(history["doc"], history["wasm"], history["docs"])
    records = [decode_record(r) for r in history["raws"]]
    assert replay(world, records) == ()
    assert world.state_hash() == history["live"]
    assert [c.op for c in world.governance.history] == ["apply", "rollback"]
    assert world.manifest_hash == parse_manifest(history["doc"]).hash  # rolled back to the first manifest
    # the tally workflow existed between the two switches only; its cell went with the rollback
    assert world.state("demo/counter@1") == history["states"]["demo/counter@1"] == {"count": 133}
    assert history["states"]["demo/counter_py@1"] == {"count": 103}  # not routed 10 and 20


@pytest.mark.parametrize("name", ["before", "between"])
def test_replay_from_a_snapshot_ends_identical(history, name):
    """From a snapshot before the apply, or between apply and rollback, the tail replays to the same state."""
    snapshot, seq = history["snapshots"][name]
    world = _fresh(history["doc"], history["wasm"], history["docs"], snapshot)
    replayer = Replayer(world)
    for raw in history["raws"][seq:]:
        replayer.feed(decode_record(raw))
    assert replayer.finish() == ()
    assert world.state_hash() == history["live"]


def test_a_tampered_manifest_change_is_nondeterministic(history):
    """An apply record that names another manifest than the one it applied is refused by replay."""
    records = [decode_record(r) for r in history["raws"]]
    at = next(i for i, r in enumerate(records) if isinstance(r, GovernanceRecord) and r.op == "apply")
    body = records[at].body
    assert body["prev_address"] != body["address"]
    tampered = dataclasses.replace(records[at], body={**body, "address": body["prev_address"]})  # the old manifest
    world = _fresh(history["doc"], history["wasm"], history["docs"])
    with pytest.raises(NondeterminismError):
        replay(world, records[:at] + [tampered] + records[at + 1:])


def test_a_restarted_kernel_wakes_the_changed_world_where_it_was(history):
    """After kill -9 and a restart, the world wakes from its latest snapshot with the manifest it runs and goes on."""
    history["kernel"].kill()
    kernel = history["kernel"] = KernelProcess(history["data"]).start()

    async def main() -> tuple:
        async with await Connection.open(kernel.address) as conn:
            world = await (await (await conn.restore_kernel(kernel.admin_token)).worlds(U)).open("w")
            manifest = (await world.manifest())["hash"]
            await world.send("demo/CounterEvent@1", {"by": 1000})
            return manifest, await world.state("demo/counter@1"), await world.governance()

    manifest, state, gov = run(main())
    assert manifest == parse_manifest(history["doc"]).hash
    assert state == {"count": 1133}
    assert [c["op"] for c in gov["history"]] == ["apply", "rollback"]
