"""The console's scheduler side without a cluster: worlds-view rows from placements, what each scheduler token
may do, and the timeline line of a control record."""

from __future__ import annotations

from aos.kernel.client import CapInfo

from aos.console import views
from aos.console.cluster import SchedulerBackend, placement_row

PLACEMENT = {"universeId": "demo", "worldId": "c1", "hostId": "host1", "address": "tcp:127.0.0.1:9", "epoch": 3,
             "state": "running", "reason": "", "name": "counter", "labels": [{"key": "zone", "value": "a"}],
             "pin": ""}


def info(kind: str, read_only: bool = False, universe: str = "") -> CapInfo:
    return CapInfo(kind, "g1", universe, read_only, "", "", "", kind)


def test_placement_rows_filter_and_sort_like_world_rows() -> None:
    rows = [placement_row(PLACEMENT), placement_row({**PLACEMENT, "worldId": "c2", "state": "moving", "hostId": ""})]
    assert rows[0]["host"] == "host1" and rows[0]["labels"] == {"zone": "a"} and rows[0]["epoch"] == 3
    total, page = views.filter_worlds(rows, state="moving", sort="id")
    assert total == 1 and page[0]["id"] == "c2"


def test_scheduler_tokens_offer_move_only_when_they_may() -> None:
    backend = SchedulerBackend("tcp:127.0.0.1:1", "aos1_x")
    backend.info = info("scheduler")
    admin = backend.permissions()
    assert admin["move"] and admin["pause"] and admin["send"] and admin["cluster"]
    assert not admin["hibernate"] and not admin["fork"] and not admin["manifest"]
    backend.info = info("scheduler", read_only=True)
    assert not any(backend.permissions()[a] for a in ("move", "pause", "send", "grants", "snapshot", "agent"))
    backend.info = info("universe", universe="demo")
    tenant = backend.permissions()
    assert tenant["pause"] and not tenant["move"] and not tenant["allUniverses"]


def test_a_control_record_reads_as_paused_or_resumed() -> None:
    row = views.journal_row({"at": 7, "kind": "control", "op": "pause", "stamp": {"logical_now_ns": 1}})
    assert row["summary"] == "world paused" and not row["problem"]
