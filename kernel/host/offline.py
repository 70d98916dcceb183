"""Read a world's journal straight from a kernel's data directory, read-only.

For tools that must not wake anything (``aos agent replay``): no kernel is
started, so no effect can run; RocksDB's read-only mode works beside a kernel
that is running on the same directory. ``read_blob`` reads one CAS blob the
same way (an agent session's history: the messages a compaction replaced).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from aos.errors import BlobNotFound, CorruptBlob, KernelError, UnknownWorld
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


def read_blob(data_dir: str, universe: str, address: str) -> bytes:
    """One blob of ``universe``'s CAS (``sha256:<hex>``), checked against its address."""
    if not cbor.is_hash_text(address):
        raise BlobNotFound(f"{address!r} is not a sha256:<hex> address")
    path = os.path.join(data_dir, "db")
    if not os.path.isdir(path):
        raise KernelError(f"no kernel data in {data_dir}")
    store = KernelStore(path, read_only=True)
    try:
        data = store.get("cas", key(universe) + bytes.fromhex(address[7:]))
    finally:
        store.close()
    if data is None:
        raise BlobNotFound(f"no blob {address} in universe {universe} under {data_dir}")
    if cbor.sha256_text(data) != address:
        raise CorruptBlob(f"blob {address} does not match its address")
    return bytes(data)
