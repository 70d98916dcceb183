"""Journals: optimistic concurrency, epoch fencing, reads, tails and group commit."""

import asyncio

import pytest

from aos.errors import InvalidArgument, PayloadTooLarge, SeqConflict, StaleEpoch, UnknownWorld
from aos.kernel.client import Connection, run


async def _journal(kernel, conn, universe="u"):
    admin = await conn.restore_kernel(kernel.admin_token)
    return await admin.journal(universe)


def test_append_read_head_and_sequence_numbers(kernel):
    """Appends get consecutive sequence numbers; read pages by fromSeq/limit."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            assert await journal.append("w", 0, 1, [b"a", b"b"]) == 0
            assert await journal.append("w", 2, 1, [b"c"]) == 2
            assert await journal.head("w") == (3, 1)
            assert await journal.read("w", 1, 1) == ([b"b"], 3)
            assert await journal.read("w", 3) == ([], 3)
            assert await journal.read("w", 99) == ([], 3)
            return await journal.read("w")

    assert run(main()) == ([b"a", b"b", b"c"], 3)


def test_wrong_expected_seq_and_stale_epoch_are_typed_errors_that_write_nothing(kernel):
    """SeqConflict and StaleEpoch are raised and the journal is unchanged."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            await journal.append("w", 0, 5, [b"a"])
            with pytest.raises(SeqConflict):
                await journal.append("w", 0, 5, [b"overwrite?"])
            with pytest.raises(SeqConflict):
                await journal.append("w", 7, 5, [b"gap?"])
            with pytest.raises(StaleEpoch):
                await journal.append("w", 1, 4, [b"zombie"])
            await journal.append("w", 1, 6, [b"new owner"])  # raises the epoch
            with pytest.raises(StaleEpoch):
                await journal.append("w", 2, 5, [b"old owner"])
            return await journal.read("w"), await journal.head("w")

    assert run(main()) == (([b"a", b"new owner"], 2), (2, 6))


def test_fence_locks_out_the_previous_owner(kernel):
    """After fence(epoch), an append with the old epoch fails even before the new owner writes."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            await journal.append("w", 0, 1, [b"a"])
            assert await journal.fence("w", 2) == 1
            with pytest.raises(StaleEpoch):
                await journal.append("w", 1, 1, [b"late"])
            with pytest.raises(StaleEpoch):
                await journal.fence("w", 1)
            return await journal.head("w")

    assert run(main()) == (1, 2)


def test_unknown_world_and_bad_arguments(kernel):
    """Reading a world that never existed, bad ids and empty appends are typed errors."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            for call in (journal.read("nope"), journal.head("nope")):
                with pytest.raises(UnknownWorld):
                    await call
            with pytest.raises(UnknownWorld):
                await journal.tail("nope", 0, _ignore)
            for bad in ("", "a/b", "x" * 129, "sp ace", "nul\x00"):
                with pytest.raises(InvalidArgument):
                    await journal.append(bad, 0, 1, [b"r"])
            with pytest.raises(InvalidArgument):
                await journal.append("w", 0, 1, [])
            with pytest.raises(PayloadTooLarge):
                await journal.append("w", 0, 1, [b"x"] * 5000)
            return await journal.list()

    assert run(main()) == []


async def _ignore(seq, records):
    return None


def test_worlds_are_listed_per_universe_in_pages(kernel):
    """list pages through the worlds of one universe only."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            a = await admin.journal("ua")
            b = await admin.journal("ub")
            for name in ("w3", "w1", "w2"):
                await a.append(name, 0, 1, [b"r"])
            await b.append("other", 0, 1, [b"r"])
            return await a.list(limit=2), await a.list(after="w2"), await b.list()

    assert run(main()) == (["w1", "w2"], ["w3"], ["other"])


def test_tail_pushes_history_then_live_records_in_order(kernel):
    """A tail from seq 1 gets the durable history, then each new append, gap-free."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            await journal.append("w", 0, 1, [b"r0", b"r1", b"r2"])
            seen: list[tuple[int, bytes]] = []
            enough = asyncio.Event()

            async def on_records(seq, records):
                seen.extend((seq + i, r) for i, r in enumerate(records))
                if len(seen) >= 6:
                    enough.set()

            subscription = await journal.tail("w", 1, on_records)
            async with await Connection.open(kernel.address) as writer_conn:
                writer = await _journal(kernel, writer_conn)
                for i in range(3, 7):
                    await writer.append("w", i, 1, [f"r{i}".encode()])
            await asyncio.wait_for(enough.wait(), 10)
            await subscription.cancel()
            return seen

    seen = run(main())
    assert seen == [(i, f"r{i}".encode()) for i in range(1, 7)]


def test_tail_stops_when_cancelled(kernel):
    """After cancel, new appends are not pushed."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            await journal.append("w", 0, 1, [b"r0"])
            pushed = asyncio.Queue()

            async def on_records(seq, records):
                await pushed.put(seq)

            subscription = await journal.tail("w", 0, on_records)
            assert await asyncio.wait_for(pushed.get(), 10) == 0
            await subscription.cancel()
            await journal.append("w", 1, 1, [b"r1"])
            # a second tail proves the append was committed and pushable
            second = asyncio.Queue()

            async def on_second(seq, records):
                await second.put(seq)

            other = await journal.tail("w", 1, on_second)
            assert await asyncio.wait_for(second.get(), 10) == 1
            await other.cancel()
            return pushed.qsize()

    assert run(main()) == 0


def test_concurrent_appends_across_connections_are_group_committed(kernel):
    """64 writers on 4 connections all succeed, in order per world, in fewer synced writes than appends."""

    writers, per_writer = 64, 20

    async def main():
        conns = [await Connection.open(kernel.address) for _ in range(4)]
        journals = [await _journal(kernel, conn) for conn in conns]
        before = await (await conns[0].restore_kernel(kernel.admin_token)).status()

        async def writer(n):
            journal = journals[n % len(journals)]
            for i in range(per_writer):
                assert await journal.append(f"w{n}", i, 1, [f"{n}:{i}".encode()]) == i

        await asyncio.gather(*(writer(n) for n in range(writers)))
        after = await (await conns[0].restore_kernel(kernel.admin_token)).status()
        contents = [await journals[0].read(f"w{n}") for n in (0, 17, 63)]
        for conn in conns:
            conn.close()
        return before, after, contents

    before, after, contents = run(main())
    appends = writers * per_writer
    assert after["committedRecords"] - before["committedRecords"] == appends
    turns = after["commitTurns"] - before["commitTurns"]
    assert turns < appends / 2, f"{turns} synced writes for {appends} appends: group commit is not batching"
    for n, (records, next_seq) in zip((0, 17, 63), contents):
        assert records == [f"{n}:{i}".encode() for i in range(per_writer)] and next_seq == per_writer


def test_records_survive_a_clean_restart(kernel):
    """Records, heads and epochs are all there after SIGTERM and start."""

    async def write():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            await journal.append("w", 0, 3, [b"a", b"b"])

    async def read():
        async with await Connection.open(kernel.address) as conn:
            journal = await _journal(kernel, conn)
            return await journal.read("w"), await journal.head("w")

    run(write())
    assert kernel.stop() == 0
    kernel.start()
    assert run(read()) == (([b"a", b"b"], 2), (2, 3))


def test_name_keys_are_each_part_nul_terminated():
    """``names.key`` (one encode of the joined parts) is each part's UTF-8 plus a NUL, as stored."""
    from aos.kernel.names import key

    for parts in [(), ("bench",), ("bench", "w-1"), ("ü", "", "#kernel.a:b")]:
        assert key(*parts) == b"".join(part.encode() + b"\x00" for part in parts)
