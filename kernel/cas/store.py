"""Content-addressed blobs: SHA-256 addresses, verified reads, one keyspace per universe.

Embedded, blobs live in RocksDB (group-committed like everything else). On
shared storage (``remote``), a put returns only once the blob is in the
universe's CAS objects (``ObjectCas``, in a storage thread, never in the
host's log), and RocksDB's ``cas`` family is the read cache: a blob another
kernel stored is fetched on first use. Such a data directory only ever
caches blobs that are in the store, so a cached blob needs no new PUT.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from aos.errors import BlobNotFound, CorruptBlob, InvalidArgument
from aos.kernel.metrics import cas_written
from aos.kernel.names import key
from aos.kernel.store import GroupCommitter, KernelStore, Op

if TYPE_CHECKING:
    from aos.kernel.storage.s3cas import ObjectCas

_ADDRESS = re.compile(r"sha256:([0-9a-f]{64})")


def address_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_address(address: str) -> bytes:
    """The 32-byte digest of a ``sha256:<hex>`` address."""
    match = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if match is None:
        raise InvalidArgument(f"bad blob address {address[:80]!r}: expected sha256:<64 lowercase hex>")
    return bytes.fromhex(match.group(1))


class CasStore:
    def __init__(self, store: KernelStore, committer: GroupCommitter, remote: ObjectCas | None = None,
                 executor: Executor | None = None) -> None:
        self._store = store
        self._committer = committer
        self._remote = remote
        self._executor = executor

    async def put(self, universe: str, data: bytes) -> str:
        digest = hashlib.sha256(data).digest()
        blob_key = key(universe) + digest
        if self._store.get("cas", blob_key) is None:
            if self._remote is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._remote.put, universe, bytes(data))
            else:
                await self._committer.commit([Op("cas", blob_key, bytes(data))])
            cas_written(universe, len(data))
        return "sha256:" + digest.hex()

    async def put_with(self, universe: str, data: bytes, ops: list[Op]) -> str:
        """Like ``put``, but embedded the blob's write joins ``ops`` instead of a commit of its own: it is
        durable once the caller has committed ``ops`` (an effect's blobs go with its receipt, one sync
        for both). On shared storage the blob is put now, as ``put`` does: the host's log holds no blobs."""
        if self._remote is not None:
            return await self.put(universe, data)
        digest = hashlib.sha256(data).digest()
        blob_key = key(universe) + digest
        if self._store.get("cas", blob_key) is None:
            ops.append(Op("cas", blob_key, bytes(data)))
            cas_written(universe, len(data))
        return "sha256:" + digest.hex()

    def get(self, universe: str, address: str) -> bytes:
        """The blob, verified. On shared storage a blob not cached here is fetched (blocking, once)."""
        digest = parse_address(address)
        data = self._store.get("cas", key(universe) + digest)
        if data is None and self._remote is not None:
            return self._remote.get(universe, address)
        if data is None:
            raise BlobNotFound(f"no blob {address} in universe {universe}")
        if hashlib.sha256(data).digest() != digest:
            raise CorruptBlob(f"blob {address} failed verification; refusing to serve it")
        return data

    def has(self, universe: str, address: str) -> bool:
        if self._store.get("cas", key(universe) + parse_address(address)) is not None:
            return True
        return self._remote is not None and self._remote.has(universe, address)

    def size(self, universe: str, address: str) -> int:
        data = self._store.get("cas", key(universe) + parse_address(address))
        if data is None and self._remote is not None:
            return len(self._remote.get(universe, address))
        if data is None:
            raise BlobNotFound(f"no blob {address} in universe {universe}")
        return len(data)
