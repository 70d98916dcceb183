"""Read a world's journal straight from a kernel's data directory, read-only.

For tools that must not wake anything (``aos agent replay``): no kernel is
started, so no effect can run; RocksDB's read-only mode works beside a kernel
that is running on the same directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from aos.errors import KernelError, UnknownWorld
from aos.kernel.host.registry import WorldMeta, journal_universe
from aos.kernel.names import key
from aos.kernel.store import KernelStore
from aos.kernel.world import cbor


@dataclass(frozen=True)
class OfflineWorld:
    meta: WorldMeta
    manifest: dict[str, Any]
    records: list[bytes]


def read_world(data_dir: str, universe: str, world_id: str) -> OfflineWorld:
    path = os.path.join(data_dir, "db")
    if not os.path.isdir(path):
        raise KernelError(f"no kernel data in {data_dir}")
    store = KernelStore(path, read_only=True)
    try:
        raw_meta = store.get("worlds", key(universe, world_id))
        if raw_meta is None:
            raise UnknownWorld(f"no world {world_id!r} in universe {universe} under {data_dir}")
        meta = WorldMeta.from_json(raw_meta)
        doc = store.get("cas", key(universe) + bytes.fromhex(meta.manifest[7:]))
        records = [value for _, value in store.scan("journal", key(journal_universe(universe), world_id))]
    finally:
        store.close()
    if doc is None:
        raise KernelError(f"the manifest of {world_id} is missing from CAS")
    return OfflineWorld(meta, cbor.decode(doc), records)
