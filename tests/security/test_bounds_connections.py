"""Nothing a client sends grows the kernel without bound: per-connection limits, freed when the connection ends.

Each table a client can make the kernel keep (claim nonces, calls in
flight, subscriptions, uploads in progress) has a per-connection bound that
answers ``aos.ResourceExhausted`` (or ``InvalidArgument`` for an oversized
nonce) while the kernel keeps serving; and thousands of connections that
each leave something behind and vanish leave the kernel's resident memory
where it was. Memory is read from ``/proc/<pid>/status`` of the real kernel
process: a measure of leaks, not of speed.
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import pytest

from aos.caps.held import MAX_NONCE_BYTES
from aos.errors import InvalidArgument, NotSaveable, ResourceExhausted
from aos.kernel.client import Connection, call, run
from aos.kernel.rpc import Peer, PeerLimits
from aos.schemas import caps_capnp

MiB = 1 << 20


def rss(pid: int) -> int:
    """The process's resident set size in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _admin(conn: Connection, kernel: Any) -> Any:
    return await conn.restore_kernel(kernel.admin_token)


async def _still_serving(kernel: Any) -> str:
    async with await Connection.open(kernel.address) as conn:
        return await (await (await _admin(conn, kernel)).cas("u")).put(b"alive")


class _HangingHeld(caps_capnp.Held.Server):  # type: ignore[misc,name-defined]
    """A client-made Held whose claim never answers until released: each save on it stays in flight."""

    def __init__(self) -> None:
        self.claims = 0
        self.release = asyncio.Event()

    async def claim(self, nonce: bytes, _context: Any, **kwargs: Any) -> None:
        self.claims += 1
        await self.release.wait()

    async def info(self, _context: Any, **kwargs: Any) -> None:
        raise NotImplementedError


async def _until(predicate: Any, timeout: float = 60.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


def test_claim_nonces_are_bounded_in_size_and_never_kept(kernel):
    """200 claims with 1 MiB nonces are refused and 200 small ones keep nothing: the kernel's RSS stays put and save still works."""

    async def main() -> None:
        async with await Connection.open(kernel.address) as conn:
            admin = await _admin(conn, kernel)
            for _ in range(20):  # warm up: message buffers, allocator arenas
                with pytest.raises(InvalidArgument):
                    await call(admin.cap.claim(os.urandom(MiB)))
            before = rss(kernel.proc.pid)
            for _ in range(200):
                with pytest.raises(InvalidArgument, match=f"at most {MAX_NONCE_BYTES} bytes"):
                    await call(admin.cap.claim(os.urandom(MiB)))
                await call(admin.cap.claim(os.urandom(MAX_NONCE_BYTES)))  # accepted, and kept nowhere
            growth = rss(kernel.proc.pid) - before
            assert growth < 20 * MiB, f"kernel RSS grew {growth / MiB:.1f} MiB over 200 MiB of nonces"
            assert (await conn.save(admin)).startswith("aos1_")

    run(main())
    assert run(_still_serving(kernel)).startswith("sha256:")


def test_calls_in_flight_per_connection_are_bounded(kernel):
    """With the connection's limit of saves hanging, the next call is ResourceExhausted; other connections, and this one once they end, are served."""
    limit = PeerLimits().calls

    async def main() -> None:
        async with await Connection.open(kernel.address) as conn:
            admin = await _admin(conn, kernel)
            fake = _HangingHeld()
            client = caps_capnp.Held._new_client(fake)
            saves = [asyncio.ensure_future(call(conn.gateway.save(client))) for _ in range(limit)]
            await _until(lambda: fake.claims == limit)  # every save is in the kernel, waiting on its claim
            with pytest.raises(ResourceExhausted, match="calls are in flight"):
                await admin.status()
            assert (await _still_serving(kernel)).startswith("sha256:")  # another connection is unaffected
            fake.release.set()
            results = await asyncio.gather(*saves, return_exceptions=True)
            assert all(isinstance(r, NotSaveable) for r in results)
            assert (await admin.status())["connections"] >= 1  # answered: the slots came back

    run(main())


def test_subscriptions_per_connection_are_bounded(kernel):
    """Past the limit a journal tail, a mailbox subscription and a world-free tail are ResourceExhausted; cancelling one makes room."""
    limit = PeerLimits().subscriptions

    async def main() -> None:
        async with await Connection.open(kernel.address) as conn:
            admin = await _admin(conn, kernel)
            journal = await admin.journal("u")
            await journal.append("w", 0, 1, [b"r"])
            mailbox = await admin.mailbox("u")

            async def ignore(*args: Any) -> None:
                pass

            handles = [await journal.tail("w", 0, ignore) for _ in range(limit - 1)]
            handles.append(await mailbox.subscribe("box", ignore))
            with pytest.raises(ResourceExhausted, match="subscriptions are open"):
                await journal.tail("w", 0, ignore)
            with pytest.raises(ResourceExhausted, match="subscriptions are open"):
                await mailbox.subscribe("other", ignore)
            await handles.pop().cancel()
            handles.append(await mailbox.subscribe("other", ignore))
            assert await journal.head("w") == (1, 1)  # plain calls are untouched by the subscription limit

    run(main())
    assert run(_still_serving(kernel)).startswith("sha256:")


def test_uploads_per_connection_are_bounded(kernel):
    """A fifth upload in progress is ResourceExhausted; committing or dropping one makes room."""
    limit = PeerLimits().uploads

    async def main() -> None:
        async with await Connection.open(kernel.address) as conn:
            cas = await (await _admin(conn, kernel)).cas("u")
            writers = [(await call(cas.cap.upload())).writer for _ in range(limit)]
            for writer in writers:
                await call(writer.write(b"chunk"))
            with pytest.raises(ResourceExhausted, match="uploads are in progress"):
                await call(cas.cap.upload())
            committed = await call(writers.pop().commit(""))
            assert committed.size == 5
            writers.append((await call(cas.cap.upload())).writer)
            writers.pop(0)
            gc.collect()  # the client releases its reference; the kernel frees the writer
            writers.append((await call(cas.cap.upload())).writer)
            with pytest.raises(ResourceExhausted):
                await call(cas.cap.upload())

    run(main())
    assert run(_still_serving(kernel)).startswith("sha256:")


class _Upload:
    def __init__(self, buffered: int) -> None:
        self.buffered = buffered
        self.released = False

    def release(self) -> None:
        self.released = True
        self.buffered = 0


def test_peer_upload_budget_and_close_release_everything() -> None:
    """A connection's uploads share one byte budget, and closing the peer frees them and refuses new ones."""
    peer = Peer(PeerLimits(uploads=3, upload_bytes=100))
    uploads = [_Upload(30), _Upload(50)]
    for upload in uploads:
        peer.add_upload(upload)
    assert peer.upload_room() == 20
    peer.end_upload(uploads[1])
    assert peer.upload_room() == 70
    peer.close()
    assert uploads[0].released and not uploads[1].released  # an ended upload is no longer the peer's
    with pytest.raises(ResourceExhausted, match="ended"):
        peer.add_upload(_Upload(0))


def test_thousands_of_dropped_connections_leave_rss_flat(kernel):
    """2,000 connections that each save, tail, subscribe, leave an upload half-written and saves waiting, then vanish, grow the kernel's RSS by under 20 MiB."""

    async def setup() -> None:
        async with await Connection.open(kernel.address) as conn:
            await (await (await _admin(conn, kernel)).journal("u")).append("w", 0, 1, [b"r"])

    async def one() -> None:
        conn = await Connection.open(kernel.address)
        admin = await _admin(conn, kernel)
        assert (await conn.save(admin)).startswith("aos1_")
        cas = await admin.cas("u")
        writer = (await call(cas.cap.upload())).writer
        await call(writer.write(b"x" * 65536))

        async def ignore(*args: Any) -> None:
            pass

        await (await admin.journal("u")).tail("w", 0, ignore)
        await (await admin.mailbox("u")).subscribe("box", ignore)
        fake = _HangingHeld()  # saves still waiting on their claims when the connection goes
        hanging = [asyncio.ensure_future(call(conn.gateway.save(caps_capnp.Held._new_client(fake)))) for _ in range(8)]
        await _until(lambda: fake.claims == 8)
        conn.close()  # no cancel, no commit, no answer: the kernel must notice and free it all
        await asyncio.gather(*hanging, return_exceptions=True)

    async def rounds(count: int) -> None:
        gate = asyncio.Semaphore(8)

        async def gated() -> None:
            async with gate:
                await one()

        await asyncio.gather(*(gated() for _ in range(count)))

    run(setup())
    run(rounds(300))  # warm-up: caches, allocator arenas, RocksDB memtables
    before = rss(kernel.proc.pid)
    run(rounds(2000))
    growth = rss(kernel.proc.pid) - before
    assert growth < 20 * MiB, f"kernel RSS grew {growth / MiB:.1f} MiB over 2,000 dropped connections"
    assert run(_still_serving(kernel)).startswith("sha256:")
