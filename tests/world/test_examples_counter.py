"""examples/counter as a keyed example: one cell per id, cells vanish at zero, replay is exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aos.kernel.world import SchemaViolation, World, replay
from aos.kernel.world.testing import Harness

MakeWorld = Callable[..., World]


@pytest.fixture
def bundle(built_examples: Path) -> Path:
    return built_examples / "counter"


def test_keyed_cells_count_independently_and_replay(make_world: MakeWorld, bundle: Path) -> None:
    """CellEvents keep one counter per id, a cell at zero is deleted, and genesis/snapshot replays match."""
    h = Harness(make_world(bundle))
    for cid, by in [("a", 2), ("b", 5), ("a", 3), ("c", 1)]:
        h.send("demo/CellEvent@1", {"id": cid, "by": by})
    h.snapshot()
    h.send("demo/CellEvent@1", {"id": "c", "by": -1})
    h.send("demo/CellEvent@1", {"id": "b", "by": -7})
    h.send("demo/CounterEvent@1", {"by": 4})  # the unkeyed WASM and Python counters, fanned out
    w = h.world
    assert w.cell_keys("demo/cells@1") == ["a", "b"]
    assert [w.state("demo/cells@1", k) for k in ("a", "b", "c")] == [{"count": 5}, {"count": -2}, None]
    assert w.state("demo/counter@1") == w.state("demo/counter_py@1") == {"count": 4}
    genesis = make_world(bundle)
    assert replay(genesis, h.journal) == ()
    mark, snap = h.snapshots[-1]
    restored = World.restore(genesis.manifest, genesis.runtimes, w.world_id, snap)
    assert replay(restored, h.journal[mark:]) == ()
    assert genesis.snapshot() == restored.snapshot() == w.snapshot()


def test_cell_event_without_an_id_is_refused(make_world: MakeWorld, bundle: Path) -> None:
    """The key field is required: a CellEvent without id never reaches the journal."""
    h = Harness(make_world(bundle))
    with pytest.raises(SchemaViolation):
        h.send("demo/CellEvent@1", {"by": 1})
    assert h.journal == []
