"""SIGKILL while a world has effects in flight: every journaled intent completes exactly once as the world sees it."""

import collections
import http.server
import os
import sys
import threading
import time

from aos.kernel.client import Connection, run
from aos.kernel.world import decode_record
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worldkit import raw_journal, wait_for  # noqa: E402

SCRIPT = "test/Script@1"


class SlowServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.hits = collections.Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), SlowHandler)


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        with self.server.lock:
            self.server.hits[self.path] += 1
        time.sleep(0.3)  # the server is slow on purpose, so requests are in flight at the kill
        body = b"ok " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def manifest():
    return {
        "version": 1,
        "schemas": {
            **SCRIPTED_SCHEMAS,
            "sys/Http@1": {"record": {"method": "text", "url": "text"}},
            "sys/Any@1": "any",
            "sys/TimerSetParams@1": {"record": {"deliver_at_ns": "nat", "key": {"option": "text"}}},
            "sys/TimerSetReceipt@1": {"record": {"delivered_at_ns": "nat", "key": {"option": "text"}}},
        },
        "modules": {"test/scripted@1": {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {"test/scripted@1": {"module": "test/scripted@1", "entry": "scripted", "state": "test/ScriptState@1",
                                          "event": SCRIPT, "effects": ["sys/http.request@1", "sys/timer.set@1"],
                                          "key": "test/Id@1"}},
        "effects": {
            "sys/http.request@1": {"params": "sys/Http@1", "receipt": "sys/Any@1", "cap": "http"},
            "sys/timer.set@1": {"params": "sys/TimerSetParams@1", "receipt": "sys/TimerSetReceipt@1", "cap": "timer"},
        },
        "grants": {"web": {"cap": "http", "params": {"hosts": ["127.0.0.1"]}}, "timer": {"cap": "timer"}},
        "routing": [{"event": SCRIPT, "workflow": "test/scripted@1", "key_field": "id"}],
    }


def test_effects_in_flight_survive_sigkill_exactly_once(kernel):
    """Events keep their effects across SIGKILL: each journaled intent gets exactly one receipt, no acknowledged event is lost."""
    server = SlowServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    doc = manifest()
    doc["schemas"]["test/Id@1"] = "text"
    acked = []

    async def load():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            world, _ = await (await admin.worlds("u")).create(doc, {}, "crashy")
            for n in range(40):
                url = f"http://127.0.0.1:{server.server_address[1]}/r{n}"
                due = time.time_ns() + 700_000_000
                event = {"id": f"c{n % 5}", "effects": [
                    {"effect": "sys/http.request@1", "params": {"method": "GET", "url": url}},
                    {"effect": "sys/timer.set@1", "params": {"deliver_at_ns": due, "key": f"t{n}"}},
                ]}
                acked.append(await world.send(SCRIPT, event))
                if sum(server.hits.values()) >= 12:
                    return  # plenty in flight: time to crash

    run(load())
    kernel.kill()
    in_flight_at_kill = len(acked)
    kernel.start()

    async def settle():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)

            async def all_receipts():
                records = [decode_record(r) for r in await raw_journal(admin, "u", "crashy")]
                intents = {r.intent_hash for r in records if r.kind == "effect_intent"}
                receipts = collections.Counter(r.intent_hash for r in records if r.kind == "receipt")
                return (records, intents, receipts) if intents and intents <= set(receipts) else None

            return await wait_for(all_receipts, timeout=60)

    records, intents, receipts = run(settle())
    server.shutdown()
    assert in_flight_at_kill >= 6
    assert all(receipts[h] == 1 for h in intents), "an intent was settled twice"
    assert set(receipts) == intents
    for seq in acked:
        assert records[seq].kind == "event"
    assert sum(r.kind == "effect_intent" for r in records) == 2 * sum(r.kind == "event" for r in records)
