"""Client processes may run on uvloop (the kernel itself serves on stock asyncio)."""

import asyncio

import uvloop

from aos.kernel.client import Connection, run


def test_uvloop_client_appends_tails_and_reads(kernel):
    """A client on uvloop does concurrent appends and a live tail against the kernel."""

    async def main():
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with await Connection.open(kernel.address) as conn:
            journal = await (await conn.restore_kernel(kernel.admin_token)).journal("u")
            seen = []

            async def on_records(seq, records):
                seen.extend(records)

            await asyncio.gather(*(journal.append(f"w{n}", 0, 1, [b"first"]) for n in range(32)))
            subscription = await journal.tail("w0", 0, on_records)

            async def writer(n):
                for i in range(1, 10):
                    await journal.append(f"w{n}", i, 1, [b"more"])

            await asyncio.gather(*(writer(n) for n in range(32)))
            heads = [await journal.head(f"w{n}") for n in range(32)]

            async def tailed_all():
                while len(seen) < 10:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(tailed_all(), 10)
            await subscription.cancel()
            return heads, len(seen)

    heads, tailed = run(main(), use_uvloop=True)
    assert heads == [(10, 1)] * 32
    assert tailed == 10
