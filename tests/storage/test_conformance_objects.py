"""The ObjectStore contract, on moto S3 and on the local directory backend:
conditional writes with S3's semantics (also under concurrent racers), GET
with ETags, and ordered LIST; the protocol layers rely on exactly these.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aos.kernel.storage import PreconditionFailed
from aos.kernel.storage.testing import Backend


def test_put_get_round_trip(backend: Backend) -> None:
    """A stored object reads back byte for byte, with the ETag the PUT returned."""
    store = backend.open()
    etag = store.put("a/b/one", b"\x00bytes\xff")
    got = store.get("a/b/one")
    assert got is not None and got.data == b"\x00bytes\xff" and got.etag == etag


def test_get_missing_is_none(backend: Backend) -> None:
    """Reading a key that was never written gives None, not an error."""
    assert backend.open().get("nothing/here") is None


def test_if_none_match_creates_only(backend: Backend) -> None:
    """If-None-Match refuses to overwrite an existing object and leaves it unchanged."""
    store = backend.open()
    store.put("k", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"second", if_none_match=True)
    got = store.get("k")
    assert got is not None and got.data == b"first"


def test_if_match_replaces_only_that_version(backend: Backend) -> None:
    """If-Match replaces the version it names and refuses a stale ETag or a missing key."""
    store = backend.open()
    v1 = store.put("k", b"v1")
    v2 = store.put("k", b"v2", if_match=v1)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"v3", if_match=v1)
    with pytest.raises(PreconditionFailed):
        store.put("missing", b"x", if_match=v2)
    got = store.get("k")
    assert got is not None and got.data == b"v2" and got.etag == v2


def test_list_is_ordered_and_prefixed(backend: Backend) -> None:
    """LIST returns every key under the prefix (recursively) in byte order, after start_after."""
    store = backend.open()
    for key in ["logs/a/002", "logs/a/000", "logs/a/001", "logs/a/head", "logs/ab/000", "logs/a/sub/x", "u/x"]:
        store.put(key, b".")
    assert list(store.list("logs/a/")) == ["logs/a/000", "logs/a/001", "logs/a/002", "logs/a/head", "logs/a/sub/x"]
    assert list(store.list("logs/a/", start_after="logs/a/001")) == ["logs/a/002", "logs/a/head", "logs/a/sub/x"]
    assert list(store.list("logs/a")) == [
        "logs/a/000", "logs/a/001", "logs/a/002", "logs/a/head", "logs/a/sub/x", "logs/ab/000",
    ]
    assert list(store.list("none/")) == []


def test_racing_creates_have_one_winner(backend: Backend) -> None:
    """Of 8 concurrent If-None-Match PUTs of one key, exactly one succeeds, and its bytes are stored."""
    stores = [backend.open() for _ in range(2)]
    for round_ in range(10):
        key = f"race/{round_}"
        barrier = threading.Barrier(8)

        def attempt(n: int) -> int | None:
            barrier.wait()
            try:
                stores[n % 2].put(key, f"writer {n}".encode(), if_none_match=True)
                return n
            except PreconditionFailed:
                return None

        with ThreadPoolExecutor(8) as pool:
            winners = [n for n in pool.map(attempt, range(8)) if n is not None]
        assert len(winners) == 1
        got = stores[0].get(key)
        assert got is not None and got.data == f"writer {winners[0]}".encode()


def test_compare_and_swap_loses_no_update(backend: Backend) -> None:
    """Concurrent read-modify-write increments through If-Match lose no increment."""
    store = backend.open()
    store.put("counter", b"0")

    def bump(times: int) -> None:
        mine = backend.open()
        for _ in range(times):
            while True:
                current = mine.get("counter")
                assert current is not None
                try:
                    mine.put("counter", str(int(current.data) + 1).encode(), if_match=current.etag)
                    break
                except PreconditionFailed:
                    continue

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(bump, [15] * 4))
    got = store.get("counter")
    assert got is not None and got.data == b"60"
