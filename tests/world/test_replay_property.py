"""Property: any run replays to the same bytes, from genesis or from any snapshot."""

from __future__ import annotations

from typing import Any

from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay
from aos.kernel.world.testing import Harness, TEST_PYTHON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TIMER = {"effect": "sys/timer.set@1", "params": {"deliver_at_ns": 1}}
GET = {"effect": "sys/http.request@1", "params": {"method": "GET", "url": "https://example.com/"}}
EVIL = {"effect": "sys/http.request@1", "params": {"method": "GET", "url": "https://evil.test/"}}

# one action: (kind, cell, payload choice)
actions = st.lists(
    st.tuples(st.sampled_from(["event", "delete", "trap", "receipt", "snapshot"]),
              st.sampled_from(["a", "b", "c"]), st.integers(0, 3)),
    min_size=1, max_size=25,
)


def _run(w: World, plan: list[tuple[str, str, int]]) -> Harness:
    h = Harness(w)
    for kind, cell, n in plan:
        if kind == "receipt":
            open_ = w.open_intents()
            if open_:
                intent = open_[n % len(open_)]
                status = ["ok", "error", "timeout", "ok"][n]
                payload = {"status": 200} if status == "ok" and intent.effect == "sys/http.request@1" else n
                h.receipt(intent, status, payload)
        elif kind == "snapshot":
            h.snapshot()
        else:
            value: dict[str, Any] = {"id": cell}
            if kind == "delete":
                value["delete"] = True
            elif kind == "trap":
                value["trap"] = True
            else:
                value["effects"] = [TIMER, GET, EVIL][: n]
                if n == 3:
                    value["emit"] = [{"schema": "demo/CounterEvent@1", "value": {"by": 1}}]
            h.send("test/Script@1", value)
    return h


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=actions)
def test_any_run_replays_byte_identically(scripted_doc: Any, plan: list[tuple[str, str, int]]) -> None:
    """Live run, genesis replay and every snapshot + tail replay end in the same snapshot bytes."""
    manifest = parse_manifest(scripted_doc(keyed=True))
    runtimes = load_runtimes(manifest, {}, python=TEST_PYTHON)
    live = World(manifest, runtimes, "prop")
    h = _run(live, plan)
    decoded = [decode_record(r.encode()) for r in h.journal]  # through the bytes, as from disk
    genesis = World(manifest, runtimes, "prop")
    assert replay(genesis, decoded) == ()
    assert genesis.snapshot() == live.snapshot()
    for at, snap in h.snapshots:
        restored = World.restore(manifest, runtimes, "prop", snap)
        assert replay(restored, decoded[at:]) == ()
        assert restored.snapshot() == live.snapshot()
