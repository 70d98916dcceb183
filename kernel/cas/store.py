"""Content-addressed blobs: SHA-256 addresses, verified reads, one keyspace per universe."""

from __future__ import annotations

import hashlib
import re

from aos.errors import BlobNotFound, CorruptBlob, InvalidArgument
from aos.kernel.metrics import cas_written
from aos.kernel.names import key
from aos.kernel.store import GroupCommitter, KernelStore, Op

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
    def __init__(self, store: KernelStore, committer: GroupCommitter) -> None:
        self._store = store
        self._committer = committer

    async def put(self, universe: str, data: bytes) -> str:
        digest = hashlib.sha256(data).digest()
        blob_key = key(universe) + digest
        if self._store.get("cas", blob_key) is None:
            await self._committer.commit([Op("cas", blob_key, bytes(data))])
            cas_written(universe, len(data))
        return "sha256:" + digest.hex()

    def get(self, universe: str, address: str) -> bytes:
        digest = parse_address(address)
        data = self._store.get("cas", key(universe) + digest)
        if data is None:
            raise BlobNotFound(f"no blob {address} in universe {universe}")
        if hashlib.sha256(data).digest() != digest:
            raise CorruptBlob(f"blob {address} failed verification; refusing to serve it")
        return data

    def has(self, universe: str, address: str) -> bool:
        return self._store.get("cas", key(universe) + parse_address(address)) is not None

    def size(self, universe: str, address: str) -> int:
        data = self._store.get("cas", key(universe) + parse_address(address))
        if data is None:
            raise BlobNotFound(f"no blob {address} in universe {universe}")
        return len(data)
