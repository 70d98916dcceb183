"""Helpers for tests of real kernels on shared storage: kernels on the moto bucket, a scripted
world with timers, blobs and HTTP, an HTTP server that holds requests until told to answer."""

from __future__ import annotations

import collections
import http.server
import os
import sys
import tempfile
import threading
from typing import Any

from aos.kernel.client import Connection
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS
from aos.testing import KernelProcess

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "host"))
from worldkit import assert_replays, decoded_journal, raw_journal, wait_for  # noqa: E402,F401

SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"
UNIVERSE = "u"


def manifest() -> dict[str, Any]:
    """The scripted workflow (it emits whatever effects its event lists), keyed by ``id``, with
    http.request (127.0.0.1), timer.set, blob.put and portal.send granted."""
    return {
        "version": 1,
        "name": "test/travelling",
        "schemas": {
            **SCRIPTED_SCHEMAS,
            "test/Id@1": "text",
            "sys/Http@1": {"record": {"method": "text", "url": "text", "send_idempotency_key": {"option": "bool"}}},
            "sys/Any@1": "any",
            "sys/TimerSetParams@1": {"record": {"deliver_at_ns": "nat", "key": {"option": "text"}}},
            "sys/TimerSetReceipt@1": {"record": {"delivered_at_ns": "nat", "key": {"option": "text"}}},
            "sys/BlobPut@1": {"record": {"data": "bytes"}},
            "sys/BlobPutReceipt@1": {"record": {"hash": "text", "size": "nat"}},
            "sys/PortalSend@1": {"record": {"dest_world": "text", "schema": "text", "value": "any"}},
        },
        "modules": {"test/scripted@1": {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {WORKFLOW: {"module": "test/scripted@1", "entry": "scripted", "state": "test/ScriptState@1",
                                 "event": SCRIPT, "key": "test/Id@1",
                                 "effects": ["sys/http.request@1", "sys/timer.set@1", "sys/blob.put@1",
                                             "sys/portal.send@1"]}},
        "effects": {
            "sys/http.request@1": {"params": "sys/Http@1", "receipt": "sys/Any@1", "cap": "http"},
            "sys/timer.set@1": {"params": "sys/TimerSetParams@1", "receipt": "sys/TimerSetReceipt@1", "cap": "timer"},
            "sys/blob.put@1": {"params": "sys/BlobPut@1", "receipt": "sys/BlobPutReceipt@1", "cap": "blob"},
            "sys/portal.send@1": {"params": "sys/PortalSend@1", "receipt": "sys/Any@1", "cap": "portal"},
        },
        "grants": {"web": {"cap": "http", "params": {"hosts": ["127.0.0.1"]}}, "timer": {"cap": "timer"},
                   "blob": {"cap": "blob"}, "portal": {"cap": "portal"}},
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW, "key_field": "id"}],
    }


def effect(name: str, **params: Any) -> dict[str, Any]:
    return {"effect": f"sys/{name}@1", "params": params}


class GatedServer(http.server.ThreadingHTTPServer):
    """Holds every request until ``gate`` is set; counts requests and their Idempotency-Key headers."""

    daemon_threads = True

    def __init__(self) -> None:
        self.hits: collections.Counter[str] = collections.Counter()
        self.keys: collections.defaultdict[str, list[str]] = collections.defaultdict(list)
        self.lock = threading.Lock()
        self.gate = threading.Event()
        super().__init__(("127.0.0.1", 0), _GatedHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def close(self) -> None:
        self.gate.set()
        self.shutdown()
        self.server_close()


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    server: GatedServer

    def do_GET(self) -> None:  # noqa: N802
        with self.server.lock:
            self.server.hits[self.path] += 1
            self.server.keys[self.path].append(self.headers.get("Idempotency-Key", ""))
        self.server.gate.wait(60)
        body = b"ok " + self.path.encode()
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the kernel that asked was killed meanwhile

    def log_message(self, *args: Any) -> None:
        pass


def data_dir() -> str:
    # unix socket paths are limited to 108 bytes: keep the directory short
    return tempfile.mkdtemp(prefix="aoss-", dir="/tmp")


def storage_kernel(path: str, url: str, host_id: str, *extra: str) -> KernelProcess:
    """An ``aos-kernel --storage URL --host-id ID`` on a unix socket and TCP 127.0.0.1 (not started)."""
    return KernelProcess(path, listen=[f"unix:{os.path.join(path, 'kernel.sock')}", "tcp:127.0.0.1:0"],
                         extra_args=["--storage", url, "--host-id", host_id, *extra])


class Session:
    """One connection to a kernel with its admin capability and the universe's worlds."""

    def __init__(self, kernel: KernelProcess) -> None:
        self.kernel = kernel

    async def __aenter__(self) -> Session:
        self.conn = await Connection.open(self.kernel.address)
        self.admin = await self.conn.restore_kernel(self.kernel.admin_token)
        self.worlds = await self.admin.worlds(UNIVERSE)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.conn.__aexit__(*exc)


def intents_and_receipts(records: list[Any]) -> tuple[set[str], collections.Counter[str]]:
    intents = {r.intent_hash for r in records if r.kind == "effect_intent"}
    receipts = collections.Counter(r.intent_hash for r in records if r.kind == "receipt")
    return intents, receipts
