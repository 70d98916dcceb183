"""Effects in hosted worlds: admission, grants, confinement, receipts, timers and hibernation."""

import os
import sys

import pytest

from aos.errors import PermissionDenied
from aos.kernel.client import Connection, run
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS, runaway_wasm
from aos.schemas import world_capnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worldkit import assert_replays, raw_journal, wait_for, wasm_module  # noqa: E402

SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"


def scripted_manifest(grants, declared, root=""):
    """A world around the scripted workflow, which emits whatever effects its event lists."""
    return {
        "version": 1,
        "name": "test/scripted",
        "schemas": {
            **SCRIPTED_SCHEMAS,
            "sys/BlobPut@1": {"record": {"data": "bytes"}},
            "sys/BlobPutReceipt@1": {"record": {"hash": "text", "size": "nat"}},
            "sys/TimerSetParams@1": {"record": {"deliver_at_ns": "nat", "key": {"option": "text"}}},
            "sys/TimerSetReceipt@1": {"record": {"delivered_at_ns": "nat", "key": {"option": "text"}}},
            "sys/FsPath@1": {"record": {"path": "text"}},
            "sys/Any@1": "any",
        },
        "modules": {"test/scripted@1": {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {
            WORKFLOW: {"module": "test/scripted@1", "entry": "scripted", "state": "test/ScriptState@1",
                       "event": SCRIPT, "effects": declared},
        },
        "effects": {
            "sys/blob.put@1": {"params": "sys/BlobPut@1", "receipt": "sys/BlobPutReceipt@1", "cap": "blob"},
            "sys/timer.set@1": {"params": "sys/TimerSetParams@1", "receipt": "sys/TimerSetReceipt@1", "cap": "timer"},
            "sys/host.fs.read@1": {"params": "sys/FsPath@1", "receipt": "sys/Any@1", "cap": "host.fs"},
            "sys/host.fs.stat@1": {"params": "sys/FsPath@1", "receipt": "sys/Any@1", "cap": "host.fs"},
        },
        "grants": grants,
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }


def effect(name, **params):
    return {"effect": name, "params": params}


async def _open(kernel, conn):
    admin = await conn.restore_kernel(kernel.admin_token)
    return admin, await admin.worlds("u")


def _kinds(records):
    from aos.kernel.world import decode_record

    return [decode_record(r) for r in records]


def test_receipts_come_back_to_the_emitting_workflow(granting_kernel):
    """blob.put runs after its intent is durable and its receipt lands in the workflow's state."""
    kernel = granting_kernel
    doc = scripted_manifest({"blob": {"cap": "blob"}}, ["sys/blob.put@1"])

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "blobs")
            await world.send(SCRIPT, {"effects": [effect("sys/blob.put@1", data=b"one"), effect("sys/blob.put@1", data=b"two")]})

            async def both_receipts():
                state = await world.state(WORKFLOW)
                return state if len(state["receipts"]) == 2 else None

            state = await wait_for(both_receipts)
            cas = await admin.cas("u")
            stored = sorted([await cas.get(r[2]["hash"]) for r in state["receipts"]])
            await assert_replays(admin, "u", world, "blobs", doc, {})
            return state, stored

    state, stored = run(main())
    assert [r[1] for r in state["receipts"]] == ["ok", "ok"] and stored == [b"one", b"two"]


def test_undeclared_effects_and_missing_grants_are_refused_and_journaled(granting_kernel):
    """An effect outside the workflow's list, or without a covering grant, is refused, and the refusal is a journal record."""
    from aos.kernel.world.records import EffectRejectedRecord

    kernel = granting_kernel
    doc = scripted_manifest({"blob": {"cap": "blob"}}, ["sys/blob.put@1", "sys/host.fs.read@1"])

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "refusals")
            await world.send(SCRIPT, {"effects": [effect("sys/timer.set@1", deliver_at_ns=1)]})  # not declared
            await world.send(SCRIPT, {"effects": [effect("sys/host.fs.read@1", path="notes.txt")]})  # no host.fs grant
            records = _kinds(await raw_journal(admin, "u", "refusals"))
            state = await world.state(WORKFLOW)
            return records, state

    records, state = run(main())
    rejected = [r for r in records if isinstance(r, EffectRejectedRecord)]
    assert [r.effect for r in rejected] == ["sys/timer.set@1", "sys/host.fs.read@1"]
    assert all(r.kind != "effect_intent" for r in records)
    assert "no host.fs grant" in rejected[1].reason
    # the workflow hears of each refusal as an error receipt
    assert [(r[0], r[1], r[2]["error"], r[2]["code"]) for r in state["receipts"]] == [
        ("sys/timer.set@1", "error", "refused", "EffectDenied"), ("sys/host.fs.read@1", "error", "refused", "EffectDenied")]


def test_host_fs_is_confined_to_its_root(granting_kernel):
    """With a host.fs grant a world reads inside its root, and '..', absolute paths and symlinks out are refused."""
    from aos.kernel.world.records import EffectRejectedRecord

    kernel = granting_kernel
    root = kernel.granted
    (root / "inside.txt").write_text("hello from inside")
    outside = root.parent / "secret.txt"
    outside.write_text("top secret")
    os.symlink(outside, root / "link-out.txt")
    doc = scripted_manifest({"files": {"cap": "host.fs", "params": {"root": str(root), "read_only": True}}},
                            ["sys/host.fs.read@1"])

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "fs")
            for path in ("inside.txt", "../secret.txt", str(outside), "link-out.txt"):
                await world.send(SCRIPT, {"effects": [effect("sys/host.fs.read@1", path=path)]})

            async def settled():
                state = await world.state(WORKFLOW)
                return state if len(state["receipts"]) == 4 else None

            state = await wait_for(settled)
            records = _kinds(await raw_journal(admin, "u", "fs"))
            return state, [r for r in records if isinstance(r, EffectRejectedRecord)]

    state, rejected = run(main())
    assert len(rejected) == 2  # '..' and the absolute path never become intents
    refused = [r for r in state["receipts"] if r[2].get("error") == "refused"]
    ran = {r[1]: r[2] for r in state["receipts"] if r[2].get("error") != "refused"}
    assert len(refused) == 2 and set(ran) == {"ok", "error"}
    assert "hello from inside" in str(ran["ok"])
    assert "top secret" not in str(state) and "path_escape" in str(ran["error"])


def test_host_grants_outside_the_kernels_roots_are_refused_at_create(granting_kernel, tmp_path):
    """A manifest granting host.fs outside the directories the kernel grants cannot be created."""
    kernel = granting_kernel
    doc = scripted_manifest({"files": {"cap": "host.fs", "params": {"root": "/etc", "read_only": True}}},
                            ["sys/host.fs.read@1"])

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            with pytest.raises(PermissionDenied):
                await worlds.create(doc, {}, "greedy")
            return await worlds.list()

    assert run(main()) == []


def test_runaway_wasm_is_stopped_by_fuel_and_reported(granting_kernel):
    """A workflow that never returns traps on fuel; the world records it and the kernel keeps serving."""
    kernel = granting_kernel
    digest, data = wasm_module(runaway_wasm())
    doc = {
        "version": 1,
        "schemas": {"t/S@1": {"record": {"n": "nat"}}, "t/E@1": {"record": {"n": "nat"}}},
        "modules": {"t/runaway@1": {"runtime": "wasm", "hash": digest}},
        "workflows": {"t/loop@1": {"module": "t/runaway@1", "state": "t/S@1", "event": "t/E@1"}},
        "routing": [{"event": "t/E@1", "workflow": "t/loop@1"}],
    }

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {digest: data}, "runaway")
            await world.send("t/E@1", {"n": 1})
            info, traps = await world.describe()
            cas = await admin.cas("u")
            return traps, await cas.put(b"kernel still serving")

    traps, address = run(main())
    assert traps and traps[0].startswith("FuelExhausted")
    assert address.startswith("sha256:")


def test_timer_fires_after_the_world_hibernated(granting_kernel):
    """A world sets a timer, hibernates while it waits, and wakes when the timer fires."""
    import time

    kernel = granting_kernel
    doc = scripted_manifest({"timer": {"cap": "timer"}}, ["sys/timer.set@1"])

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "sleeper")
            due = time.time_ns() + 1_500_000_000
            await world.send(SCRIPT, {"effects": [effect("sys/timer.set@1", deliver_at_ns=due, key="wake")]})

            async def hibernated():
                return not (await worlds.list())[0]["awake"]

            await wait_for(hibernated)

            async def fired():
                listed = (await worlds.list())[0]
                if not listed["awake"]:
                    return None
                state = await world.state(WORKFLOW)
                return state if state["receipts"] else None

            state = await wait_for(fired)
            await assert_replays(admin, "u", world, "sleeper", doc, {})
            return state, due

    state, due = run(main())
    assert state["receipts"] == [["sys/timer.set@1", "ok", {"delivered_at_ns": due, "key": "wake"}]]


def test_hibernated_world_wakes_on_its_next_event(granting_kernel):
    """After hibernating, a world keeps its state and takes the next event."""
    kernel = granting_kernel
    doc = scripted_manifest({}, [])

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "napper")
            await world.send(SCRIPT, {})

            async def hibernated():
                return not (await worlds.list())[0]["awake"]

            await wait_for(hibernated)
            await world.send(SCRIPT, {})
            return await world.state(WORKFLOW), (await worlds.list())[0]["awake"]

    state, awake = run(main())
    assert state["n"] == 2 and awake


def test_effects_of_one_step_run_concurrently(kernel):
    """Two HTTP effects emitted in one step are in flight together: a server that needs both at once answers both."""
    import http.server
    import threading

    barrier = threading.Barrier(2, timeout=10)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            try:
                barrier.wait()  # only returns once the other request has arrived too
                code = 200
            except threading.BrokenBarrierError:
                code = 500
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    doc = scripted_manifest({"web": {"cap": "http", "params": {"hosts": ["127.0.0.1"]}}}, ["sys/http.request@1"])
    doc["schemas"]["sys/Http@1"] = {"record": {"method": "text", "url": "text"}}
    doc["effects"]["sys/http.request@1"] = {"params": "sys/Http@1", "receipt": "sys/Any@1", "cap": "http"}

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "parallel")
            await world.send(SCRIPT, {"effects": [effect("sys/http.request@1", method="GET", url=f"{url}/a"),
                                                  effect("sys/http.request@1", method="GET", url=f"{url}/b")]})

            async def both():
                state = await world.state(WORKFLOW)
                return state if len(state["receipts"]) == 2 else None

            return await wait_for(both)

    state = run(main())
    server.shutdown()
    assert [r[1] for r in state["receipts"]] == ["ok", "ok"]
    assert all(r[2]["status"] == 200 for r in state["receipts"])


def test_revoking_a_grant_at_runtime_refuses_the_next_effect(granting_kernel):
    """After setGrant(blob, off) the next blob.put settles as 'revoked' without running; turning it back on works,
    and the switch survives a restart."""
    kernel = granting_kernel
    doc = scripted_manifest({"blob": {"cap": "blob"}}, ["sys/blob.put@1"])
    put = {"effects": [effect("sys/blob.put@1", data=b"x")]}

    async def receipts_after(world, count):
        async def enough():
            state = await world.state(WORKFLOW)
            return state["receipts"] if len(state["receipts"]) >= count else None

        return await wait_for(enough)

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "granted")
            await world.send(SCRIPT, put)
            await receipts_after(world, 1)
            await world.set_grant("blob", False)
            listed = await world.grants()
            await world.send(SCRIPT, put)
            refused = (await receipts_after(world, 2))[1]
            with pytest.raises(InvalidArgument):
                await world.set_grant("nope", False)
            return listed, refused

    from aos.errors import InvalidArgument

    listed, refused = run(main())
    assert listed == [{"name": "blob", "cap": "blob", "params": {}, "active": False}]
    assert refused[1] == "error" and refused[2]["error"] == "revoked"
    kernel.stop()
    kernel.start()

    async def after_restart():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            world = await worlds.open("granted")
            still_off = (await world.grants())[0]["active"]
            await world.set_grant("blob", True)
            await world.send(SCRIPT, put)
            return still_off, (await receipts_after(world, 3))[2]

    still_off, third = run(after_restart())
    assert still_off is False and third[1] == "ok"


def test_long_effects_stream_frames_to_watchers(granting_kernel):
    """A running host.exec sends its output as stream frames to the world's watchers before its receipt arrives."""
    import asyncio

    kernel = granting_kernel
    root = kernel.granted
    doc = scripted_manifest({"sh": {"cap": "host.exec", "params": {"cwd": str(root), "shell": True}}}, ["sys/host.exec@1"])
    doc["schemas"]["sys/Exec@1"] = {"record": {"argv": {"list": "text"}}}
    doc["effects"]["sys/host.exec@1"] = {"params": "sys/Exec@1", "receipt": "sys/Any@1", "cap": "host.exec"}
    script = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"

    async def main():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, {}, "streamer")
            frames, first_seen = [], asyncio.Event()

            async def on_frame(intent_hash, frame):
                frames.append(frame)
                if "first" in str(frame.get("data")):
                    first_seen.set()

            records = []

            async def on_record(seq, record):
                records.append(seq)

            class Counting(world_capnp.WorldWatcher.Server):
                """A watcher that asked for no frames: the kernel sends it records only."""

                def __init__(self):
                    self.seen, self.frames = [], 0  # (not `records`: pycapnp would take it for that method)

                async def record(self, seq, json, _context, **kwargs):
                    self.seen.append(seq)

                async def frame(self, intentHash, json, _context, **kwargs):
                    self.frames += 1

            subscription = await world.tail(0, on_record, on_frame)
            bare = Counting()
            bare_handle = (await world.cap.tail(0, bare, False)).handle
            await world.send(SCRIPT, {"effects": [effect("sys/host.exec@1", argv=["bash", "-c", script])]})
            try:
                await asyncio.wait_for(first_seen.wait(), 15)
            except TimeoutError:
                raise AssertionError(f"no first frame: {frames} {await world.state(WORKFLOW)}")
            # the command is still running (it waits for 'go'): the frame came before any receipt
            before = (await world.state(WORKFLOW))["receipts"]
            (root / "go").write_text("")

            async def done():
                state = await world.state(WORKFLOW)
                return state if state["receipts"] else None

            state = await wait_for(done)

            async def bare_caught_up():
                return records and bare.seen == records

            await wait_for(bare_caught_up)
            await subscription.cancel()
            await bare_handle.cancel()
            return before, frames, state, bare

    before, frames, state, bare = run(main())
    assert bare.frames == 0 and bare.seen == sorted(bare.seen)
    assert before == []
    assert frames and all(f.get("stream") in ("stdout", "stderr") for f in frames)
    assert state["receipts"][0][1] == "ok" and "second" in str(state["receipts"][0][2]["stdout"])
