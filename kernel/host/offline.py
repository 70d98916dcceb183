"""Read a world's journal straight from a kernel's data directory, read-only.

For tools that must not wake anything (``aos agent replay``): no kernel is
started, so no effect can run; RocksDB's read-only mode works beside a kernel
that is running on the same directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import rocksdict

from aos.errors import KernelError, UnknownWorld
from aos.kernel.host.registry import WorldMeta, journal_universe
from aos.kernel.names import key
from aos.kernel.store import COLUMN_FAMILIES
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
    options = rocksdict.Options(raw_mode=True)
    families = {name: rocksdict.Options(raw_mode=True) for name in COLUMN_FAMILIES}
    try:
        db = rocksdict.Rdict(path, options=options, column_families=families,
                             access_type=rocksdict.AccessType.read_only())
    except Exception as exc:  # rocksdict raises plain Exceptions
        raise KernelError(f"cannot open {path} read-only: {exc}") from None
    try:
        raw_meta = db.get_column_family("worlds").get(key(universe, world_id))
        if raw_meta is None:
            raise UnknownWorld(f"no world {world_id!r} in universe {universe} under {data_dir}")
        row = json.loads(raw_meta)
        row["revoked_grants"] = tuple(row.get("revoked_grants", ()))
        meta = WorldMeta(**row)
        doc = db.get_column_family("cas").get(key(universe) + bytes.fromhex(meta.manifest[7:]))
        prefix = key(journal_universe(universe), world_id)
        it = db.get_column_family("journal").iter()
        it.seek(prefix)
        records = []
        while it.valid() and it.key().startswith(prefix):
            records.append(it.value())
            it.next()
        del it
    finally:
        db.close()
    if doc is None:
        raise KernelError(f"the manifest of {world_id} is missing from CAS")
    return OfflineWorld(meta, cbor.decode(doc), records)
