"""examples/blob-echo: text -> blob.put -> blob.get of the hash -> the echo in state."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from aos.kernel.world import EffectIntentRecord, SchemaViolation, World, replay
from aos.kernel.world.testing import Harness

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "blob-echo"
WF = "demo/blob-echo@1"
MakeWorld = Callable[..., World]


def _put_receipt(data: bytes) -> dict[str, object]:
    # what a CAS would answer: its content hash and the size
    return {"hash": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def _check_replay(h: Harness, make_world: MakeWorld) -> None:
    """Genesis replay and snapshot + tail replay both end byte-identical to the live world."""
    genesis = make_world(BUNDLE)
    assert replay(genesis, h.journal) == ()
    assert genesis.state_hash() == h.world.state_hash()
    mark, snap = h.snapshots[-1]
    restored = World.restore(genesis.manifest, genesis.runtimes, h.world.world_id, snap)
    assert replay(restored, h.journal[mark:]) == ()
    assert restored.snapshot() == h.world.snapshot()


def test_text_round_trips_through_put_and_get(make_world: MakeWorld) -> None:
    """An EchoText puts its UTF-8 bytes, the put receipt's hash is fetched, and the get receipt lands in state."""
    h = Harness(make_world(BUNDLE))
    (put,) = h.send("demo/EchoText@1", {"text": "héllo"}).intents
    assert (put.effect, put.params, put.grant) == ("sys/blob.put@1", {"data": "héllo".encode()}, "blob")
    ref = _put_receipt(put.params["data"])
    (get,) = h.receipt(put, "ok", ref).intents
    assert (get.effect, get.params) == ("sys/blob.get@1", {"hash": ref["hash"]})
    h.snapshot()
    assert h.receipt(get, "ok", {"data": "héllo".encode()}).intents == ()
    assert h.world.state(WF) == {"sent": 1, "echoed": 1, "failures": 0, "last_text": "héllo",
                                 "last_hash": ref["hash"], "last_size": 6}
    assert h.world.open_intents() == ()
    _check_replay(h, make_world)


def test_failed_put_ends_the_echo_and_replays(make_world: MakeWorld) -> None:
    """An error receipt for the put emits no get and counts a failure; a second echo still works."""
    h = Harness(make_world(BUNDLE))
    (put1,) = h.send("demo/EchoText@1", {"text": "a"}).intents
    (put2,) = h.send("demo/EchoText@1", {"text": "bb"}).intents
    assert h.receipt(put1, "error", {"error": "unavailable", "message": "cas down"}).intents == ()
    h.snapshot()
    (get,) = h.receipt(put2, "ok", _put_receipt(b"bb")).intents
    h.receipt(get, "error", {"error": "not_found", "message": "no such blob"})
    st = h.world.state(WF)
    assert (st["sent"], st["echoed"], st["failures"], st["last_text"]) == (2, 0, 2, None)
    _check_replay(h, make_world)


def test_receipt_that_breaks_the_schema_is_refused_at_the_door(make_world: MakeWorld) -> None:
    """A blob.put ok receipt without a size does not match sys/BlobPutReceipt@1 and is refused."""
    h = Harness(make_world(BUNDLE))
    (put,) = h.send("demo/EchoText@1", {"text": "x"}).intents
    assert isinstance(put, EffectIntentRecord)
    with pytest.raises(SchemaViolation):
        h.receipt(put, "ok", {"hash": "sha256:" + "0" * 64})
