"""examples/fetch-notify: GET a URL, record status and body length, notify a second workflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aos.kernel.world import (
    DomainEventRecord,
    EffectRejectedRecord,
    SchemaViolation,
    World,
    replay,
)
from aos.kernel.world.testing import Harness

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "fetch-notify"
FETCHER, NOTIFIER = "demo/fetcher@1", "demo/notifier@1"
URL = "http://127.0.0.1:43210/hello"
MakeWorld = Callable[..., World]


def _answer(url: str, status: int, body: str) -> tuple[str, dict[str, Any]]:
    """(receipt status, payload) as the kernel delivers adapters/http.py answers: a 4xx/5xx is an
    error receipt whose payload is {error, message} plus the response."""
    payload: dict[str, Any] = {"status": status, "url": url, "headers": [["content-type", "text/plain"]],
                               "body": body, "encoding": "utf-8", "truncated": False}
    if status < 400:
        return "ok", payload
    return "error", {"error": "http_status", "message": f"GET 127.0.0.1 answered {status}", **payload}


def _check_replay(h: Harness, make_world: MakeWorld) -> None:
    """Genesis replay and snapshot + tail replay both end byte-identical to the live world."""
    genesis = make_world(BUNDLE)
    assert replay(genesis, h.journal) == ()
    assert genesis.state_hash() == h.world.state_hash()
    mark, snap = h.snapshots[-1]
    restored = World.restore(genesis.manifest, genesis.runtimes, h.world.world_id, snap)
    assert replay(restored, h.journal[mark:]) == ()
    assert restored.snapshot() == h.world.snapshot()


def test_fetch_records_status_and_notifies(make_world: MakeWorld) -> None:
    """A Fetch emits a GET under the http grant; its ok receipt sets status/body length and the notifier counts it."""
    h = Harness(make_world(BUNDLE))
    (get,) = h.send("demo/Fetch@1", {"url": URL}).intents
    assert (get.effect, get.params, get.grant) == ("sys/http.request@1", {"method": "GET", "url": URL}, "web")
    h.snapshot()
    res = h.receipt(get, *_answer(URL, 200, "hello wörld"))
    notes = [r for r in res.records if isinstance(r, DomainEventRecord)]
    assert [(n.schema, n.value) for n in notes] == [("demo/Notified@1", {"url": URL, "status": 200, "body_len": 12})]
    st = h.world.state(FETCHER)
    assert (st["last_url"], st["last_status"], st["last_body_len"], st["pending"]) == (URL, 200, 12, {})
    assert h.world.state(NOTIFIER)["count"] == 1
    _check_replay(h, make_world)


def test_errors_do_not_notify_and_two_fetches_match_their_receipts(make_world: MakeWorld) -> None:
    """Receipts settle out of order to the right URL; 4xx/5xx answers notify, a receipt without a response does not."""
    h = Harness(make_world(BUNDLE))
    (a,) = h.send("demo/Fetch@1", {"url": URL + "/a"}).intents
    (b,) = h.send("demo/Fetch@1", {"url": URL + "/b"}).intents
    (c,) = h.send("demo/Fetch@1", {"url": URL + "/c"}).intents
    h.receipt(b, *_answer(URL + "/b", 404, ""))
    h.snapshot()
    h.receipt(a, "error", {"error": "connection_error", "message": "refused"})  # no response, no status
    h.receipt(c, *_answer(URL + "/c", 500, "oops"))
    st = h.world.state(FETCHER)
    assert (st["requested"], st["fetched"], st["errors"]) == (3, 2, 1)
    assert (st["last_url"], st["last_status"], st["last_body_len"]) == (URL + "/c", 500, 4)
    assert h.world.state(NOTIFIER) == {"count": 2, "last": {"url": URL + "/c", "status": 500, "body_len": 4}}
    _check_replay(h, make_world)


def test_hosts_outside_the_grant_are_rejected(make_world: MakeWorld) -> None:
    """A URL whose host is not 127.0.0.1 becomes an effect_rejected record, not an intent."""
    h = Harness(make_world(BUNDLE))
    res = h.send("demo/Fetch@1", {"url": "http://example.com/"})
    assert res.intents == ()
    (rej,) = [r for r in res.records if isinstance(r, EffectRejectedRecord)]
    assert rej.code == "EffectDenied" and "example.com" in rej.reason


def test_ok_receipt_must_match_the_http_adapter_shape(make_world: MakeWorld) -> None:
    """An ok receipt missing the adapter's fields (here url/headers/encoding/truncated) is refused at the door."""
    h = Harness(make_world(BUNDLE))
    (get,) = h.send("demo/Fetch@1", {"url": URL}).intents
    with pytest.raises(SchemaViolation):
        h.receipt(get, "ok", {"status": 200, "body": "x"})
