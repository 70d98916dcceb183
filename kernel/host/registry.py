"""Which worlds exist, what they run, and where their latest snapshot is."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from aos.kernel.names import key
from aos.kernel.store import KernelStore, Op


@dataclass(frozen=True, slots=True)
class WorldMeta:
    """The durable facts about one world (the ``worlds`` column family)."""

    universe: str
    world_id: str
    name: str
    manifest: str  # CAS address of the manifest document (canonical CBOR)
    manifest_hash: str  # the manifest's definition hash
    created_ms: int
    snapshot: str = ""  # CAS address of the latest snapshot, "" = none
    snapshot_seq: int = 0  # journal seq of that snapshot's marker record (replay starts there)
    forked_from: str = ""
    last_event_ms: int = 0  # when the world last took an input, as of its latest snapshot
    revoked_grants: tuple[str, ...] = ()  # manifest grants an operator switched off at runtime
    quarantined: str = ""  # why the kernel stopped waking it ("" = it wakes normally)
    paused: bool = False  # an operator paused it (World.pause); the journal's control record is the truth

    @classmethod
    def from_json(cls, raw: bytes) -> WorldMeta:
        row = json.loads(raw)
        row["revoked_grants"] = tuple(row.get("revoked_grants", ()))
        return cls(**row)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    def with_snapshot(self, address: str, seq: int) -> WorldMeta:
        return replace(self, snapshot=address, snapshot_seq=seq)


def journal_universe(universe: str) -> str:
    """The journal keyspace of a universe's hosted worlds.

    "/" is not allowed in names a client can pass, so no Journal capability can
    reach (and corrupt) a hosted world's journal; worlds are read through the
    World capability instead."""
    return universe + "/worlds"


class WorldRegistry:
    def __init__(self, store: KernelStore) -> None:
        self._store = store
        self._metas: dict[tuple[str, str], WorldMeta] = {}
        for _, raw in store.scan("worlds", b""):
            meta = WorldMeta.from_json(raw)
            self._metas[(meta.universe, meta.world_id)] = meta

    def get(self, universe: str, world_id: str) -> WorldMeta | None:
        return self._metas.get((universe, world_id))

    def all(self, universe: str | None = None) -> list[WorldMeta]:
        metas = [m for (u, _), m in self._metas.items() if universe is None or u == universe]
        return sorted(metas, key=lambda m: (m.universe, m.world_id))

    def put_op(self, meta: WorldMeta) -> Op:
        return Op("worlds", key(meta.universe, meta.world_id), meta.to_json())

    def remember(self, meta: WorldMeta) -> None:
        """Call after ``put_op`` was committed."""
        self._metas[(meta.universe, meta.world_id)] = meta

    def forget(self, universe: str, world_id: str) -> WorldMeta | None:
        """Stop knowing a world (it left for another kernel); returns what was known."""
        return self._metas.pop((universe, world_id), None)

    def load(self, universe: str, world_id: str) -> WorldMeta | None:
        """Read one world's entry from the store again (it arrived from another kernel)."""
        raw = self._store.get("worlds", key(universe, world_id))
        if raw is None:
            self._metas.pop((universe, world_id), None)
            return None
        meta = self._metas[(universe, world_id)] = WorldMeta.from_json(raw)
        return meta

    def __len__(self) -> int:
        return len(self._metas)
