"""Every example world hosted by a real ``aos-kernel``: run it over Cap'n Proto, then replay its journal from genesis."""

import collections
import hashlib
import http.server
import os
import socket
import sys
import threading

import pytest

from aos.errors import AosError, PermissionDenied
from aos.kernel.client import Connection, run
from aos.kernel.world.records import (DomainEventRecord, EffectIntentRecord, EffectRejectedRecord, EventRecord,
                                      ReceiptRecord, SnapshotRecord)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worldkit import assert_replays, bundle, decoded_journal, wait_for, wait_for_state  # noqa: E402

U = "u"


async def _open(kernel, conn):
    admin = await conn.restore_kernel(kernel.admin_token)
    return admin, await admin.worlds(U)


async def _listed(worlds, world_id):
    return next(w for w in await worlds.list() if w["worldId"] == world_id)


class ScriptedHttp(http.server.ThreadingHTTPServer):
    """A test HTTP server on 127.0.0.1: each path answers its scripted (status, body) list in turn, the last one repeating."""

    daemon_threads = True

    def __init__(self, script):
        self.script = script
        self.hits = collections.Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def close(self):
        self.shutdown()
        self.server_close()


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        with self.server.lock:
            n = self.server.hits[self.path]
            self.server.hits[self.path] += 1
        answers = self.server.script.get(self.path, [(404, b"no such path")])
        status, body = answers[min(n, len(answers) - 1)]
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    servers = []

    def start(script):
        server = ScriptedHttp(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _dead_port():
    """A 127.0.0.1 port with nothing listening (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- counter ---------------------------------------------------------------------------------------


def test_counter_cells_survive_hibernation_with_the_same_snapshot(example_kernel):
    """A cell brought back to zero is deleted; after hibernating and waking the world has the same snapshot address."""
    kernel = example_kernel
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "counter")
            await world.send_batch([("demo/CellEvent@1", {"id": "a", "by": 2}),
                                    ("demo/CellEvent@1", {"id": "b", "by": 3}),
                                    ("demo/CellEvent@1", {"id": "c", "by": 4}),
                                    ("demo/CellEvent@1", {"id": "c", "by": -4}),
                                    ("demo/CellEvent@1", {"id": "a", "by": 5})])
            before = await world.snapshot()
            cells_before = await world.cells("demo/cells@1")

            async def hibernated():
                return not (await _listed(worlds, "counter"))["awake"]

            await wait_for(hibernated)
            # reading state wakes the world from its snapshot
            cells = await world.cells("demo/cells@1")
            values = [await world.state("demo/cells@1", k) for k in ("a", "b", "c")]
            awake = (await _listed(worlds, "counter"))["awake"]
            after = await world.snapshot()
            records = await decoded_journal(admin, U, "counter")
            await assert_replays(admin, U, world, "counter", doc, wasm)
            return cells_before, cells, values, awake, before, after, records

    cells_before, cells, values, awake, before, after, records = run(main())
    assert cells_before == cells == ["a", "b"]
    assert values == [{"count": 7}, {"count": 3}, None]
    assert awake
    assert after[0] == before[0] and after[1] > before[1]  # same state, a later marker
    # the hibernation's own snapshot marker is in the journal between the two explicit ones
    markers = [r for r in records if isinstance(r, SnapshotRecord)]
    assert len(markers) >= 4 and {m.snapshot_hash for m in markers[1:]} == {before[0]}


# --- hello-timer -----------------------------------------------------------------------------------


def test_hello_timer_fires_and_pending_timers_survive_sigkill(example_kernel):
    """A timer fires once with intent, receipt and domain event journaled in order; timers pending at a SIGKILL fire once after restart."""
    kernel = example_kernel
    doc, wasm = bundle("hello-timer")
    wf = "demo/hello-timer@1"

    async def first():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "timer")
            await world.send("demo/TimerStart@1", {"delay_ns": 200_000_000, "key": "first"})
            state = await wait_for_state(world, wf, lambda s: s["fired"] == 1)
            records = await decoded_journal(admin, U, "timer")
            await assert_replays(admin, U, world, "timer", doc, wasm)
            # at the SIGKILL below both timers are pending: one falls due while the kernel is down, one after restart
            await world.send_batch([("demo/TimerStart@1", {"delay_ns": 300_000_000, "key": "second"}),
                                    ("demo/TimerStart@1", {"delay_ns": 1_500_000_000, "key": "third"})])
            return state, records

    state, records = run(first())
    kernel.kill()
    kernel.start()

    async def after_restart():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world = await worlds.open("timer")
            state = await wait_for_state(world, wf, lambda s: s["fired"] == 3)
            records = await decoded_journal(admin, U, "timer")
            await assert_replays(admin, U, world, "timer", doc, wasm)
            return state, records

    state2, records2 = run(after_restart())

    assert state == {"started": 1, "fired": 1}
    kinds = [r.kind for r in records]
    start = next(i for i, r in enumerate(records) if isinstance(r, EventRecord))
    intent_at = kinds.index("effect_intent")
    receipt_at = kinds.index("receipt")
    domain_at = kinds.index("domain_event")
    assert start < intent_at < receipt_at < domain_at
    intent, receipt, fired = records[intent_at], records[receipt_at], records[domain_at]
    assert intent.effect == "sys/timer.set@1" and intent.grant == "timer"
    assert intent.params == {"deliver_at_ns": records[start].stamp.logical_now_ns + 200_000_000, "key": "first"}
    assert receipt.intent_hash == intent.intent_hash and receipt.status == "ok"
    assert receipt.payload == {"delivered_at_ns": intent.params["deliver_at_ns"], "key": "first"}
    assert (fired.schema, fired.value) == ("demo/TimerFired@1", {"key": "first"})

    assert state2 == {"started": 3, "fired": 3}
    intents = [r for r in records2 if isinstance(r, EffectIntentRecord)]
    receipts = collections.Counter(r.intent_hash for r in records2 if isinstance(r, ReceiptRecord))
    assert len(intents) == 3 and all(receipts[i.intent_hash] == 1 for i in intents)  # exactly once, crash or not
    assert sorted(r.value["key"] for r in records2 if isinstance(r, DomainEventRecord)) == ["first", "second", "third"]


# --- blob-echo -------------------------------------------------------------------------------------


def test_blob_echo_round_trips_text_through_cas(example_kernel):
    """Text is put into CAS and read back: the echo, its UTF-8 size and its CAS address are in state."""
    kernel = example_kernel
    doc, wasm = bundle("blob-echo")
    text = "héllo"

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "echo")
            await world.send("demo/EchoText@1", {"text": text})
            state = await wait_for_state(world, "demo/blob-echo@1", lambda s: s["echoed"] == 1)
            stored = await (await admin.cas(U)).get(state["last_hash"])
            await assert_replays(admin, U, world, "echo", doc, wasm)
            return state, stored

    state, stored = run(main())
    data = text.encode("utf-8")
    assert state == {"sent": 1, "echoed": 1, "failures": 0, "last_text": text, "last_size": 6,
                     "last_hash": "sha256:" + hashlib.sha256(data).hexdigest()}
    assert stored == data


# --- fetch-notify ----------------------------------------------------------------------------------


def test_fetch_notify_counts_answers_and_connection_errors(example_kernel, http_server):
    """200 and 404 answers are fetched and notified with their body length; a refused connection is an error, not a notification."""
    kernel = example_kernel
    ok_body = "all good: ✓".encode()
    missing_body = b"not here"
    server = http_server({"/ok": [(200, ok_body)], "/missing": [(404, missing_body)]})
    doc, wasm = bundle("fetch-notify")
    dead = f"http://127.0.0.1:{_dead_port()}/nobody"

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "fetch")
            await world.send("demo/Fetch@1", {"url": server.url("/ok")})
            first = await wait_for_state(world, "demo/fetcher@1", lambda s: s["fetched"] == 1)
            await world.send("demo/Fetch@1", {"url": server.url("/missing")})
            second = await wait_for_state(world, "demo/fetcher@1", lambda s: s["fetched"] == 2)
            await world.send("demo/Fetch@1", {"url": dead})
            third = await wait_for_state(world, "demo/fetcher@1", lambda s: s["errors"] == 1)
            notifier = await world.state("demo/notifier@1")
            await assert_replays(admin, U, world, "fetch", doc, wasm)
            return first, second, third, notifier

    first, second, third, notifier = run(main())
    assert (first["last_status"], first["last_body_len"], first["last_url"]) == (200, len(ok_body), server.url("/ok"))
    assert (second["last_status"], second["last_body_len"]) == (404, len(missing_body))
    assert (third["requested"], third["fetched"], third["errors"], third["pending"]) == (3, 2, 1, {})
    assert third["last_status"] == 404  # the error left the last answer alone
    assert notifier == {"count": 2, "last": {"url": server.url("/missing"), "status": 404,
                                              "body_len": len(missing_body)}}
    assert server.hits == {"/ok": 1, "/missing": 1}


# --- retry-with-backoff ----------------------------------------------------------------------------


def test_retry_backs_off_on_logical_time_until_done_or_gave_up(example_kernel, http_server):
    """503, 503, 200 ends done after 3 attempts with timers at receipt stamp + base*2^(n-1); always-503 gives up at max."""
    kernel = example_kernel
    server = http_server({"/flaky": [(503, b"busy"), (503, b"busy"), (200, b"fine")], "/down": [(503, b"down")]})
    doc, wasm = bundle("retry-with-backoff")
    wf, base = "demo/retry@1", 40_000_000

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            flaky, _ = await worlds.create(doc, wasm, "flaky")
            down, _ = await worlds.create(doc, wasm, "down")
            await flaky.send("demo/RetryStart@1", {"url": server.url("/flaky"), "max_attempts": 5, "base_ns": base})
            # a backoff longer than the idle time: the world hibernates while its timer is pending
            await down.send("demo/RetryStart@1", {"url": server.url("/down"), "max_attempts": 2,
                                                  "base_ns": 1_200_000_000})
            done = await wait_for_state(flaky, wf, lambda s: s["done"] or s["gave_up"])

            async def down_retried_and_asleep():  # list() does not touch the world, so it can go idle
                return server.hits["/down"] == 2 and not (await _listed(worlds, "down"))["awake"]

            await wait_for(down_retried_and_asleep)
            gave_up = await wait_for_state(down, wf, lambda s: s["done"] or s["gave_up"])
            records = await decoded_journal(admin, U, "flaky")
            down_records = await decoded_journal(admin, U, "down")
            await assert_replays(admin, U, flaky, "flaky", doc, wasm)
            await assert_replays(admin, U, down, "down", doc, wasm)
            return done, gave_up, records, down_records

    done, gave_up, records, down_records = run(main())
    assert (done["attempts"], done["done"], done["gave_up"], done["last_status"], done["errors"]) == (3, True, False, 200, 0)
    assert (gave_up["attempts"], gave_up["done"], gave_up["gave_up"], gave_up["last_status"]) == (2, False, True, 503)
    assert server.hits == {"/flaky": 3, "/down": 2}
    kinds = [r.kind if not isinstance(r, EffectIntentRecord) else r.effect for r in down_records]
    timer_at = kinds.index("sys/timer.set@1")
    assert "snapshot" in kinds[timer_at:kinds.index("receipt", timer_at)]  # the hibernation's marker

    # each timer intent was derived from the http receipt just before it in the journal
    intents = {r.intent_hash: r for r in records if isinstance(r, EffectIntentRecord)}
    timers = []
    last_input, inputs = None, 0
    for record in records:
        if isinstance(record, (EventRecord, ReceiptRecord)):
            last_input, inputs = record, inputs + 1
        elif isinstance(record, EffectIntentRecord) and record.effect == "sys/timer.set@1":
            assert isinstance(last_input, ReceiptRecord)
            assert intents[last_input.intent_hash].effect == "sys/http.request@1"
            assert record.emitted_at_seq == inputs  # the world's input count: the receipt's seq
            timers.append((record, last_input))
    assert len(timers) == 2
    for n, (timer, receipt) in enumerate(timers, start=1):
        assert timer.params == {"deliver_at_ns": receipt.stamp.logical_now_ns + base * 2 ** (n - 1)}
        assert receipt.status == "error" and receipt.payload["status"] == 503


# --- fs-notes --------------------------------------------------------------------------------------


def test_fs_notes_writes_and_lists_files_under_the_granted_root(example_kernel, tmp_path):
    """Notes become files under the grant root and are listed; a '../x' name emits nothing; a root outside the kernel's grant is refused."""
    kernel = example_kernel
    root = kernel.granted / "notes-root"
    root.mkdir()
    doc, wasm = bundle("fs-notes", grant_root=str(root))
    (tmp_path / "elsewhere").mkdir()  # exists, but is not under a directory the kernel grants
    outside_doc, _ = bundle("fs-notes", grant_root=str(tmp_path / "elsewhere"))
    wf = "demo/fs-notes@1"

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "notes")
            await world.send("demo/NoteOp@1", {"op": "add", "name": "a", "text": "first note"})
            await world.send("demo/NoteOp@1", {"op": "add", "name": "b", "text": "zweite Notiz ü"})
            added = await wait_for_state(world, wf, lambda s: s["writes"] == 2)
            await world.send("demo/NoteOp@1", {"op": "list"})
            listed = await wait_for_state(world, wf, lambda s: s["lists"] == 1)
            intents_before = sum(isinstance(r, EffectIntentRecord) for r in await decoded_journal(admin, U, "notes"))
            await world.send("demo/NoteOp@1", {"op": "add", "name": "../x", "text": "escape"})
            refused = await world.state(wf)
            records = await decoded_journal(admin, U, "notes")
            await assert_replays(admin, U, world, "notes", doc, wasm)
            with pytest.raises(PermissionDenied):
                await worlds.create(outside_doc, {}, "greedy")
            ids = sorted(w["worldId"] for w in await worlds.list())
            return added, listed, intents_before, refused, records, ids

    added, listed, intents_before, refused, records, ids = run(main())
    assert (root / "notes" / "a.txt").read_text() == "first note"
    assert (root / "notes" / "b.txt").read_text() == "zweite Notiz ü"
    assert added["notes"] == ["a", "b"] and added["errors"] == 0 and added["pending"] == {}
    assert listed["last_listing"] == ["a.txt", "b.txt"]
    assert intents_before == 3
    assert sum(isinstance(r, EffectIntentRecord) for r in records) == 3  # '../x' emitted nothing
    assert "../x" in refused["last_error"] and refused["notes"] == ["a", "b"]
    assert not (tmp_path / "x.txt").exists() and not (kernel.granted / "x.txt").exists()
    assert ids == ["notes"]


def test_fs_notes_loses_host_access_when_the_kernel_no_longer_grants_its_root(example_kernel):
    """After a restart without --grant-host, a world's host.fs write is refused (at the door, at admission or by its receipt) and no file appears."""
    kernel = example_kernel
    root = kernel.granted / "notes-root"
    root.mkdir()
    doc, wasm = bundle("fs-notes", grant_root=str(root))
    wf = "demo/fs-notes@1"

    async def create():
        async with await Connection.open(kernel.address) as conn:
            _, worlds = await _open(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "notes")
            await world.send("demo/NoteOp@1", {"op": "add", "name": "a", "text": "granted"})
            await wait_for_state(world, wf, lambda s: s["writes"] == 1)

    run(create())
    kernel.stop()
    kernel.extra_args = ["--idle-seconds", "0.3"]  # the operator no longer grants any host directory
    kernel.start()

    async def after():
        async with await Connection.open(kernel.address) as conn:
            admin, worlds = await _open(kernel, conn)
            world = await worlds.open("notes")
            try:
                seq = await world.send("demo/NoteOp@1", {"op": "add", "name": "b", "text": "not granted"})
            except AosError:
                return "refused at the door"

            async def settled():
                records = await decoded_journal(admin, U, "notes")
                (intent,) = [r for r in records[seq:] if isinstance(r, EffectIntentRecord)] or [None]
                rejected = any(isinstance(r, EffectRejectedRecord) for r in records[seq:])
                answered = intent is not None and any(isinstance(r, ReceiptRecord) and r.intent_hash == intent.intent_hash
                                                      for r in records[seq:])
                return rejected or answered

            await wait_for(settled)
            return await world.state(wf)

    outcome = run(after())
    assert not (root / "notes" / "b.txt").exists(), outcome
