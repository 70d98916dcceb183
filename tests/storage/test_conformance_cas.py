"""Content-addressed blobs on moto S3 and on the local directory backend:
verified reads, deduplication across kernels, typed refusals, and the
host's RocksDB (a real KernelStore) as a read cache that is never trusted blindly.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator

import pytest

from aos.errors import BlobNotFound, CorruptBlob, InvalidArgument
from aos.kernel.names import key
from aos.kernel.store import KernelStore
from aos.kernel.storage import KernelStoreCache, ObjectCas
from aos.kernel.storage.layout import blob_key
from aos.kernel.storage.testing import Backend


@pytest.fixture
def kernel_store() -> Iterator[KernelStore]:
    with tempfile.TemporaryDirectory(prefix="aos-cache-") as path:
        store = KernelStore(path)
        try:
            yield store
        finally:
            store.close()


def test_put_then_get(backend: Backend) -> None:
    """A blob reads back from another kernel's handle under its sha256 address."""
    address = ObjectCas(backend.open()).put("u", b"hello blob")
    assert address == "sha256:" + hashlib.sha256(b"hello blob").hexdigest()
    assert ObjectCas(backend.open()).get("u", address) == b"hello blob"
    assert ObjectCas(backend.open()).has("u", address)


def test_same_bytes_are_stored_once_across_kernels(backend: Backend) -> None:
    """Two kernels putting the same bytes in one universe get one address and one object; universes stay apart."""
    first = ObjectCas(backend.open()).put("u", b"shared module")
    second = ObjectCas(backend.open()).put("u", b"shared module")
    assert first == second
    store = backend.open()
    assert len(list(store.list("u/u/cas/"))) == 1
    assert not ObjectCas(store).has("other", first)


def test_missing_blob_and_bad_address(backend: Backend) -> None:
    """An unknown blob is BlobNotFound and a malformed address is InvalidArgument."""
    cas = ObjectCas(backend.open())
    with pytest.raises(BlobNotFound):
        cas.get("u", "sha256:" + "ab" * 32)
    with pytest.raises(InvalidArgument):
        cas.get("u", "md5:1234")


def test_tampered_blob_is_refused(backend: Backend) -> None:
    """Bytes in the store that no longer hash to their address are refused with CorruptBlob."""
    store = backend.open()
    address = ObjectCas(store).put("u", b"original")
    digest = address.removeprefix("sha256:")
    store.put(blob_key("u", digest), b"tampered")
    with pytest.raises(CorruptBlob):
        ObjectCas(backend.open()).get("u", address)


def test_the_cache_serves_repeat_reads(backend: Backend, kernel_store: KernelStore) -> None:
    """After the first read, a blob comes from the host's RocksDB without a request to the store."""
    address = ObjectCas(backend.open()).put("u", b"definition bytes")
    store = backend.open()
    cas = ObjectCas(store, KernelStoreCache(kernel_store))
    assert cas.get("u", address) == b"definition bytes"
    before = store.counter.total  # type: ignore[attr-defined]
    assert cas.get("u", address) == b"definition bytes"
    assert store.counter.total == before  # type: ignore[attr-defined]
    assert kernel_store.get("cas", key("u") + bytes.fromhex(address[7:])) == b"definition bytes"


def test_a_damaged_cache_entry_is_refetched(backend: Backend, kernel_store: KernelStore) -> None:
    """A cache entry that fails verification is ignored and replaced from the store."""
    address = ObjectCas(backend.open()).put("u", b"good bytes")
    digest = bytes.fromhex(address[7:])
    kernel_store.family("cas")[key("u") + digest] = b"bit rot"
    cas = ObjectCas(backend.open(), KernelStoreCache(kernel_store))
    assert cas.get("u", address) == b"good bytes"
    assert kernel_store.get("cas", key("u") + digest) == b"good bytes"


def test_put_uploads_even_when_the_cache_has_the_blob(backend: Backend, kernel_store: KernelStore) -> None:
    """A blob only in the host's local cache (stored before shared storage) is still uploaded on put."""
    data = b"local only"
    digest = hashlib.sha256(data).digest()
    kernel_store.family("cas")[key("u") + digest] = data
    ObjectCas(backend.open(), KernelStoreCache(kernel_store)).put("u", data)
    assert ObjectCas(backend.open()).get("u", "sha256:" + digest.hex()) == data
