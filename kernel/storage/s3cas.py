"""A universe's content-addressed blobs on shared storage, the host's RocksDB as a read cache.

Blobs live at ``u/<universe>/cas/<sha256 hex>``, written with ``If-None-Match:
*``: a 412 means the blob is already there (put by another world or kernel),
which is exactly deduplication, at the cost of one request. Every read is
re-hashed, from the cache or the store, and bytes that do not hash to their
address are refused (``CorruptBlob``) and never cached. Definitions and
modules are blobs, so a kernel fetches them from the store on first use and
from its cache after that.

Why ``put`` does not trust the cache: the cache may be the ``cas`` family of
a kernel that stored blobs locally before it had shared storage, so "in the
cache" does not mean "in the store". Only what this process saw the store
accept is skipped.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Protocol

from aos.errors import BlobNotFound, CorruptBlob
from aos.kernel.cas.store import parse_address
from aos.kernel.names import key
from aos.kernel.store import KernelStore
from aos.kernel.storage.contract import ObjectStore, PreconditionFailed
from aos.kernel.storage.layout import blob_key

KNOWN_DIGESTS = 65536


class BlobCache(Protocol):
    """Where a host keeps blobs it has read or written (never the source of truth)."""

    def get(self, universe: str, digest: bytes) -> bytes | None:
        ...

    def put(self, universe: str, digest: bytes, data: bytes) -> None:
        ...


class KernelStoreCache:
    """The host's RocksDB ``cas`` family, keyed exactly as ``CasStore`` keys it (``universe NUL digest``)."""

    def __init__(self, store: KernelStore) -> None:
        self._store = store

    def get(self, universe: str, digest: bytes) -> bytes | None:
        return self._store.get("cas", key(universe) + digest)

    def put(self, universe: str, digest: bytes, data: bytes) -> None:
        # unsynced on purpose: a cache entry lost in a crash is fetched again
        self._store.family("cas")[key(universe) + digest] = data


class ObjectCas:
    """``BlobStore`` over an ``ObjectStore``, with an optional ``BlobCache``."""

    def __init__(self, objects: ObjectStore, cache: BlobCache | None = None) -> None:
        self.objects = objects
        self.cache = cache
        self._known: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def _seen(self, universe: str, digest: bytes) -> bool:
        with self._lock:
            return (universe, digest) in self._known

    def _remember(self, universe: str, digest: bytes) -> None:
        with self._lock:
            self._known[(universe, digest)] = None
            self._known.move_to_end((universe, digest))
            while len(self._known) > KNOWN_DIGESTS:
                self._known.popitem(last=False)

    def put(self, universe: str, data: bytes) -> str:
        """Store ``data``; return its address once it is in the store (deduplicated per universe)."""
        data = bytes(data)
        digest = hashlib.sha256(data).digest()
        if not self._seen(universe, digest):
            try:
                self.objects.put(blob_key(universe, digest.hex()), data, if_none_match=True)
            except PreconditionFailed:
                pass  # already there: another world or kernel stored the same bytes
            self._remember(universe, digest)
            if self.cache is not None:
                self.cache.put(universe, digest, data)
        return "sha256:" + digest.hex()

    def get(self, universe: str, address: str) -> bytes:
        """The blob's bytes, verified; ``BlobNotFound`` or ``CorruptBlob`` otherwise."""
        digest = parse_address(address)
        if self.cache is not None:
            cached = self.cache.get(universe, digest)
            if cached is not None and hashlib.sha256(cached).digest() == digest:
                return cached
            # a missing or damaged cache entry: the store has the truth
        stored = self.objects.get(blob_key(universe, digest.hex()))
        if stored is None:
            raise BlobNotFound(f"no blob {address} in universe {universe}")
        if hashlib.sha256(stored.data).digest() != digest:
            raise CorruptBlob(f"blob {address} failed verification; refusing to serve it")
        self._remember(universe, digest)
        if self.cache is not None:
            self.cache.put(universe, digest, stored.data)
        return stored.data

    def has(self, universe: str, address: str) -> bool:
        digest = parse_address(address)
        if self._seen(universe, digest):
            return True
        try:
            self.get(universe, address)
        except BlobNotFound:
            return False
        return True
