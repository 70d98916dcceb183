"""examples/retry-with-backoff (C/WASM): retries on logical-time backoff, gives up, ignores stale receipts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aos.kernel.world import EffectIntentRecord, World, replay
from aos.kernel.world.testing import Harness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WF = "demo/retry@1"
URL = "http://127.0.0.1:43210/flaky"
HTTP, TIMER = "sys/http.request@1", "sys/timer.set@1"
MakeWorld = Callable[..., World]
CONN_ERROR = {"error": "connection_error", "message": "GET 127.0.0.1: connection refused"}


@pytest.fixture
def bundle(built_examples: Path) -> Path:
    return built_examples / "retry-with-backoff"


def _check_replay(h: Harness, make_world: MakeWorld, bundle: Path) -> None:
    """Genesis replay and snapshot + tail replay both end byte-identical to the live world."""
    genesis = make_world(bundle)
    assert replay(genesis, h.journal) == ()
    assert genesis.state_hash() == h.world.state_hash()
    mark, snap = h.snapshots[-1]
    restored = World.restore(genesis.manifest, genesis.runtimes, h.world.world_id, snap)
    assert replay(restored, h.journal[mark:]) == ()
    assert restored.snapshot() == h.world.snapshot()


def _answer(status: int, body: str = "") -> tuple[str, dict[str, Any]]:
    """(receipt status, payload) as the kernel delivers adapters/http.py answers: a 4xx/5xx is an
    error receipt whose payload is {error, message} plus the response."""
    payload: dict[str, Any] = {"status": status, "url": URL, "headers": [], "body": body, "encoding": "utf-8",
                               "truncated": False}
    if status < 400:
        return "ok", payload
    return "error", {"error": "http_status", "message": f"GET 127.0.0.1 answered {status}", **payload}


def _one(res: Any) -> EffectIntentRecord:
    (intent,) = res.intents
    assert isinstance(intent, EffectIntentRecord)
    return intent


def _fire(h: Harness, timer: EffectIntentRecord) -> EffectIntentRecord:
    """Deliver a timer receipt and return the retried request."""
    req = _one(h.receipt(timer, "ok", {"delivered_at_ns": timer.params["deliver_at_ns"], "key": None}))
    assert (req.effect, req.params, req.grant) == (HTTP, {"method": "GET", "url": URL}, "web")
    return req


def test_backoff_doubles_from_logical_time_until_success(make_world: MakeWorld, bundle: Path) -> None:
    """Failures schedule timers at receipt-stamp now + base * 2^(attempt-1); a 2xx ends the run as done."""
    h = Harness(make_world(bundle))
    req = _one(h.send("demo/RetryStart@1", {"url": URL, "max_attempts": 4, "base_ns": 1_000}))
    assert (req.effect, req.params, req.grant) == (HTTP, {"method": "GET", "url": URL}, "web")
    timer = _one(h.receipt(req, "error", CONN_ERROR))
    assert (timer.effect, timer.grant) == (TIMER, "timer")
    assert timer.params == {"deliver_at_ns": h.clock.now + 1_000}  # clock.now = the receipt's stamp
    req = _fire(h, timer)
    timer = _one(h.receipt(req, *_answer(503)))
    assert timer.params == {"deliver_at_ns": h.clock.now + 2_000}
    st = h.world.state(WF)
    assert (st["attempts"], st["last_status"], st["errors"], st["next_at_ns"]) == (2, 503, 1, h.clock.now + 2_000)
    h.snapshot()
    req = _fire(h, timer)
    timer = _one(h.receipt(req, *_answer(500, "again")))
    assert timer.params == {"deliver_at_ns": h.clock.now + 4_000}
    req = _fire(h, timer)
    assert h.receipt(req, *_answer(200, "fine")).intents == ()
    st = h.world.state(WF)
    assert (st["attempts"], st["last_status"], st["done"], st["gave_up"]) == (4, 200, True, False)
    assert st["next_at_ns"] is None
    assert h.world.open_intents() == ()
    _check_replay(h, make_world, bundle)


def test_gives_up_after_max_attempts(make_world: MakeWorld, bundle: Path) -> None:
    """With max_attempts 2, a second failure sets gave_up and schedules nothing; a 4xx would not have retried."""
    h = Harness(make_world(bundle))
    req = _one(h.send("demo/RetryStart@1", {"url": URL, "max_attempts": 2}))
    timer = _one(h.receipt(req, "timeout", {"error": "timeout", "message": "no complete answer within 30s"}))
    assert timer.params == {"deliver_at_ns": h.clock.now + 100_000_000}  # default base: 100 ms
    h.snapshot()
    req = _fire(h, timer)
    assert h.receipt(req, *_answer(502)).intents == ()
    st = h.world.state(WF)
    assert (st["attempts"], st["last_status"], st["errors"], st["done"], st["gave_up"]) == (2, 502, 1, False, True)
    req = _one(h.send("demo/RetryStart@1", {"url": URL, "max_attempts": 5}))
    assert h.receipt(req, *_answer(404)).intents == ()
    assert h.world.state(WF)["done"] is True
    _check_replay(h, make_world, bundle)


def test_a_new_start_makes_receipts_of_the_old_run_stale(make_world: MakeWorld, bundle: Path) -> None:
    """A receipt emitted by an earlier run changes nothing; max_attempts 0 counts as one attempt."""
    h = Harness(make_world(bundle))
    old = _one(h.send("demo/RetryStart@1", {"url": URL + "/old", "max_attempts": 3}))
    new = _one(h.send("demo/RetryStart@1", {"url": URL, "max_attempts": 0}))
    before = h.world.state_bytes(WF)
    h.snapshot()
    assert h.receipt(old, *_answer(200)).intents == ()
    assert h.world.state_bytes(WF) == before
    assert h.receipt(new, "error", CONN_ERROR).intents == ()
    st = h.world.state(WF)
    assert (st["url"], st["max_attempts"], st["attempts"], st["gave_up"], st["done"]) == (URL, 1, 1, True, False)
    _check_replay(h, make_world, bundle)


def test_backoff_saturates_instead_of_overflowing(make_world: MakeWorld, bundle: Path) -> None:
    """A huge base makes the timer saturate at 2^63-1 rather than wrap around to the past."""
    h = Harness(make_world(bundle))
    req = _one(h.send("demo/RetryStart@1", {"url": URL, "max_attempts": 3, "base_ns": 1 << 62}))
    timer = _one(h.receipt(req, *_answer(500)))
    assert timer.params == {"deliver_at_ns": h.clock.now + (1 << 62)}
    req = _fire(h, timer)
    timer = _one(h.receipt(req, *_answer(500)))
    assert timer.params == {"deliver_at_ns": (1 << 63) - 1}


def test_a_long_url_is_copied_whole(make_world: MakeWorld, bundle: Path) -> None:
    """A 100 KB URL survives start, failure and retry (the module's output buffer fits it twice) without a trap."""
    h = Harness(make_world(bundle))
    url = URL + "/" + "x" * 100_000
    res = h.send("demo/RetryStart@1", {"url": url, "max_attempts": 2, "base_ns": 1})
    assert res.traps == () and _one(res).params == {"method": "GET", "url": url}
    timer = _one(h.receipt(_one(res), "error", CONN_ERROR))
    res = h.receipt(timer, "ok", {"delivered_at_ns": timer.params["deliver_at_ns"], "key": None})
    assert res.traps == () and _one(res).params["url"] == url
    assert h.world.state(WF)["url"] == url


def test_rebuilt_module_matches_the_committed_artifact(built_examples: Path) -> None:
    """`make -C examples` reproduces the committed retry.wasm byte for byte."""
    if built_examples == EXAMPLES:
        pytest.skip("clang/lld not installed; using the committed artifacts")
    built = (built_examples / "retry-with-backoff" / "retry.wasm").read_bytes()
    assert built == (EXAMPLES / "retry-with-backoff" / "retry.wasm").read_bytes()
    assert built[:4] == b"\0asm" and len(built) < 100 * 1024
