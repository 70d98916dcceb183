"""Hosted worlds over Cap'n Proto: create, send, state, journal, snapshot, fork, replay."""

import sys
import os

import pytest

from aos.errors import InvalidArgument, UnknownWorld
from aos.kernel.world.errors import ManifestError, SchemaViolation
from aos.kernel.client import Connection, run
from aos.kernel.world.testing import TEST_PYTHON

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worldkit import assert_replays, bundle, raw_journal  # noqa: E402


async def _worlds(kernel, conn, universe="u"):
    admin = await conn.restore_kernel(kernel.admin_token)
    return admin, await admin.worlds(universe)


def test_counter_in_wasm_and_python_runs_and_replays(kernel):
    """Events update the WASM and Python counters alike, and a fresh replay ends in the same state."""
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _worlds(kernel, conn)
            world, info = await worlds.create(doc, wasm, "counter")
            assert info["journalHeight"] == 1 and info["snapshot"].startswith("sha256:")
            seqs = [await world.send("demo/CounterEvent@1", {"by": n}) for n in (1, 2, 3)]
            await world.send("demo/CellEvent@1", {"by": 5, "id": "a"})
            await world.send("demo/CellEvent@1", {"by": 7, "id": "b"})
            states = (await world.state("demo/counter@1"), await world.state("demo/counter_py@1"),
                      await world.cells("demo/cells@1"), await world.state("demo/cells@1", "b"))
            return seqs, states, await assert_replays(admin, "u", world, "counter", doc, wasm)

    seqs, states, state_hash = run(main())
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert states == ({"count": 6}, {"count": 6}, ["a", "b"], {"count": 7})
    assert state_hash.startswith("sha256:")


def test_replaying_the_same_journal_twice_gives_identical_snapshots(kernel):
    """Determinism: two replays of one journal produce byte-identical snapshots."""
    from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay

    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "det")
            for n in range(20):
                await world.send("demo/CellEvent@1", {"by": n, "id": f"k{n % 3}"})
            return await raw_journal(admin, "u", "det")

    raw = run(main())
    snapshots = []
    for _ in range(2):
        manifest = parse_manifest(doc)
        fresh = World(manifest, load_runtimes(manifest, wasm, python=TEST_PYTHON), "det")
        replay(fresh, [decode_record(r) for r in raw])
        snapshots.append(fresh.snapshot())
    assert snapshots[0] == snapshots[1] and len(snapshots[0]) > 50


def test_bad_events_are_refused_at_the_door_and_never_journaled(kernel):
    """A value that breaks its schema, or an unknown schema, is a SchemaViolation and adds nothing."""
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "door")
            await world.send("demo/CounterEvent@1", {"by": 1})
            before = len(await raw_journal(admin, "u", "door"))
            for schema, value in (("demo/CounterEvent@1", {"by": "one"}), ("demo/CounterEvent@1", {}),
                                  ("demo/Nope@1", {"by": 1}), ("demo/CellEvent@1", {"by": 1})):
                with pytest.raises(SchemaViolation):
                    await world.send(schema, value)
            after = len(await raw_journal(admin, "u", "door"))
            return before, after, await world.state("demo/counter@1")

    before, after, state = run(main())
    assert before == after and state == {"count": 1}


def test_bad_manifests_and_unknown_worlds_are_typed_errors(kernel):
    """A malformed manifest names the bad field; unknown worlds and taken ids are refused."""
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _worlds(kernel, conn)
            broken = dict(doc, workflows={"x": {"module": "nope"}})
            with pytest.raises(ManifestError) as info:
                await worlds.create(broken, wasm)
            with pytest.raises(UnknownWorld):
                await worlds.open("missing")
            await worlds.create(doc, wasm, "taken")
            with pytest.raises(InvalidArgument):
                await worlds.create(doc, wasm, "taken")
            with pytest.raises(InvalidArgument):
                await worlds.create("{not json", {})
            return str(info.value)

    assert "$.workflows" in run(main())


def test_snapshot_fork_and_restart(kernel):
    """A fork starts from the source's state and diverges; both survive a kernel restart."""
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _worlds(kernel, conn)
            source, _ = await worlds.create(doc, wasm, "src")
            await source.send("demo/CounterEvent@1", {"by": 10})
            fork, info = await worlds.fork("src", "copy")
            await fork.send("demo/CounterEvent@1", {"by": 1})
            await source.send("demo/CounterEvent@1", {"by": 100})
            return info["forkedFrom"], await source.state("demo/counter@1"), await fork.state("demo/counter@1")

    assert run(main()) == ("src", {"count": 110}, {"count": 11})
    kernel.kill()  # a crash, not a clean stop: state must come back from snapshot + journal
    kernel.start()

    async def after():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _worlds(kernel, conn)
            listed = {w["worldId"]: w for w in await worlds.list()}
            source, fork = await worlds.open("src"), await worlds.open("copy")
            return sorted(listed), await source.state("demo/counter@1"), await fork.state("demo/counter@1")

    assert run(after()) == (["copy", "src"], {"count": 110}, {"count": 11})


def test_journal_tail_streams_new_records(kernel):
    """A world tail delivers the journal's records as they are committed."""
    import asyncio

    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "tailed")
            seen = []
            got_event = asyncio.Event()

            async def on_record(seq, record):
                seen.append((seq, record["kind"]))
                if record["kind"] == "event":
                    got_event.set()

            subscription = await world.tail(0, on_record)
            await world.send("demo/CounterEvent@1", {"by": 1})
            await asyncio.wait_for(got_event.wait(), 10)
            await subscription.cancel()
            return seen

    seen = run(main())
    assert seen[0] == (0, "snapshot") and (1, "event") in seen


def test_send_batch_is_all_or_nothing_at_the_door(kernel):
    """sendBatch journals events in order; one bad event refuses the whole batch and names its index."""
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "batch")
            seqs = await world.send_batch([("demo/CounterEvent@1", {"by": n}) for n in range(1, 101)])
            with pytest.raises(SchemaViolation) as info:
                await world.send_batch([("demo/CounterEvent@1", {"by": 1}), ("demo/CounterEvent@1", {"by": "x"})])
            return seqs, str(info.value), await world.state("demo/counter@1")

    seqs, error, state = run(main())
    assert seqs == sorted(seqs) and len(seqs) == 100
    assert error.startswith("events[1]") and state == {"count": 5050}


def test_every_definition_is_in_cas_under_its_canonical_hash(kernel):
    """The manifest's canonical form and each definition it names are stored in CAS under their hashes."""
    from aos.kernel.world import parse_manifest
    from aos.kernel.world.manifest import def_hash

    doc, wasm = bundle("counter")
    manifest = parse_manifest(doc)
    expected = [manifest.hash] + [def_hash(d) for defs in (manifest.schemas, manifest.workflows, manifest.modules)
                                  for d in defs.values()]

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _worlds(kernel, conn)
            _, info = await worlds.create(doc, wasm, "defs")
            cas = await admin.cas("u")
            return info["manifestHash"], [await cas.has(h) for h in expected]

    manifest_hash, present = run(main())
    assert manifest_hash == manifest.hash and all(present)


def test_journal_capabilities_cannot_reach_a_hosted_worlds_journal(kernel):
    """A universe's Journal cap sees no hosted world's journal, and writing its name does not disturb the world."""
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "guarded")
            await world.send("demo/CounterEvent@1", {"by": 2})
            journal = await admin.journal("u")
            with pytest.raises(UnknownWorld):
                await journal.read("guarded")
            await journal.append("guarded", 0, 1, [b"not a world record"])
            await world.send("demo/CounterEvent@1", {"by": 3})
            return await journal.list(), await world.state("demo/counter@1"), await assert_replays(
                admin, "u", world, "guarded", doc, wasm)

    listed, state, _ = run(main())
    assert listed == ["guarded"] and state == {"count": 5}
