"""The examples' receipt schemas against the real adapters' receipts (in-process, no kernel, no network).

Each intent runs through the adapter the kernel would pick (``host.fs`` on a
temporary directory, ``http`` over an ``httpx.MockTransport``); its receipt is
turned into a receipt record the way ``kernel/host/driver.py`` does (a failure's
payload is ``{error, message, **payload}``) and must pass the world's door.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aos.kernel.world import EffectIntentRecord, World, replay
from aos.kernel.world.testing import Harness

httpx = pytest.importorskip("httpx")
host_fs = pytest.importorskip("aos.adapters.host_fs")
http = pytest.importorskip("aos.adapters.http")
base = pytest.importorskip("aos.adapters.base")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MakeWorld = Callable[..., World]
BASE_URL = "http://127.0.0.1:45678"


def _settle(h: Harness, intent: EffectIntentRecord, adapter: Any) -> Any:
    """Run one intent through an adapter and deliver its receipt as the kernel's driver does."""
    kind = intent.effect.split("/", 1)[1].rsplit("@", 1)[0]
    grant = h.world.manifest.grants[intent.grant].params
    call = base.EffectCall(kind, intent.params, grant, intent.idempotency_key)

    async def sink(frame: Any) -> None:
        pass

    r = asyncio.run(adapter.run(call, sink))
    payload = dict(r.payload)
    if r.status != "ok":
        payload = {"error": r.error or r.status, "message": r.message, **payload}
    return h.receipt(intent, r.status, payload)  # raises SchemaViolation if the door refuses it


def _replays(h: Harness, fresh: World) -> None:
    assert replay(fresh, h.journal) == ()
    assert fresh.snapshot() == h.world.snapshot()


def _server(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.startswith("/status/"):
        return httpx.Response(int(path.rsplit("/", 1)[1]), text=f"status {path}")
    return httpx.Response(200, text="hello wörld", headers={"content-type": "text/plain; charset=utf-8"})


def test_fs_notes_with_the_host_fs_adapter(make_world: MakeWorld, tmp_path: Path) -> None:
    """Real host.fs receipts pass the door: a list before any note fails, adds write files, a list names them."""
    doc = json.loads((EXAMPLES / "fs-notes" / "manifest.json").read_text())
    doc["grants"]["notes"]["params"]["root"] = str(tmp_path)
    h, fs = Harness(make_world(doc)), host_fs.HostFsAdapter()
    (ls,) = h.send("demo/NoteOp@1", {"op": "list"}).intents
    _settle(h, ls, fs)
    assert h.world.state("demo/fs-notes@1")["last_error"] == "sys/host.fs.list@1: not_found"
    for name, text in [("b", "second"), ("a", "first")]:
        (w,) = h.send("demo/NoteOp@1", {"op": "add", "name": name, "text": text}).intents
        _settle(h, w, fs)
    assert (tmp_path / "notes" / "a.txt").read_text() == "first"
    (ls,) = h.send("demo/NoteOp@1", {"op": "list"}).intents
    _settle(h, ls, fs)
    st = h.world.state("demo/fs-notes@1")
    assert (st["notes"], st["last_listing"], st["writes"], st["errors"]) == (["a", "b"], ["a.txt", "b.txt"], 2, 1)
    _replays(h, make_world(doc))


def test_fetch_notify_with_the_http_adapter(make_world: MakeWorld) -> None:
    """Real http receipts pass the door: a 200 and a 404 (an error receipt with the response) both notify."""
    bundle = EXAMPLES / "fetch-notify"
    h, web = Harness(make_world(bundle)), http.HttpAdapter(transport=httpx.MockTransport(_server))
    for path in ("/hello", "/status/404"):
        (get,) = h.send("demo/Fetch@1", {"url": BASE_URL + path}).intents
        _settle(h, get, web)
    st = h.world.state("demo/fetcher@1")
    assert (st["fetched"], st["errors"], st["last_status"]) == (2, 0, 404)
    assert h.world.state("demo/notifier@1")["count"] == 2
    first = next(r for r in h.journal if getattr(r, "schema", None) == "demo/Notified@1")
    assert first.value == {"url": BASE_URL + "/hello", "status": 200, "body_len": len("hello wörld".encode())}
    _replays(h, make_world(bundle))


def test_retry_with_the_http_adapter(make_world: MakeWorld, built_examples: Path) -> None:
    """A real 503 error receipt schedules a backoff timer; after the timer, a real 200 ends the run as done."""
    bundle = built_examples / "retry-with-backoff"
    answers = iter([503, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), text="x")

    h, web = Harness(make_world(bundle)), http.HttpAdapter(transport=httpx.MockTransport(flaky))
    (req,) = h.send("demo/RetryStart@1", {"url": BASE_URL + "/flaky", "max_attempts": 3, "base_ns": 5_000}).intents
    (timer,) = _settle(h, req, web).intents
    assert timer.params == {"deliver_at_ns": h.clock.now + 5_000}
    # the kernel makes a timer's receipt itself when it fires: {delivered_at_ns, key}
    (req,) = h.receipt(timer, "ok", {"delivered_at_ns": timer.params["deliver_at_ns"], "key": None}).intents
    assert _settle(h, req, web).intents == ()
    st = h.world.state("demo/retry@1")
    assert (st["attempts"], st["last_status"], st["done"], st["errors"]) == (2, 200, True, 0)
    _replays(h, make_world(bundle))
