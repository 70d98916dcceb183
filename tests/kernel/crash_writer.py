"""A journal writer for the crash test, run as its own process.

Appends batches to its worlds until the kernel goes away, and writes a line
"world first_seq count" to its ack log after each acknowledged append, flushed
before the next append, so the log is exactly what the kernel acknowledged.
"""

import asyncio
import sys

from aos.errors import AosError
from aos.kernel.client import Connection, run


def record(world: str, seq: int) -> bytes:
    # variable length, content fixed by (world, seq): a partial or misplaced record is detectable
    return f"{world}:{seq}:".encode() + bytes([seq % 251]) * (seq % 97)


async def main(address: str, token: str, prefix: str, worlds: int, ack_path: str) -> None:
    with open(ack_path, "w", buffering=1) as acks:
        async with await Connection.open(address) as conn:
            journal = await (await conn.restore_kernel(token)).journal("crash")

            async def writer(world: str) -> None:
                seq = 0
                while True:
                    count = 1 + seq % 4
                    batch = [record(world, seq + i) for i in range(count)]
                    await journal.append(world, seq, 1, batch)
                    acks.write(f"{world} {seq} {count}\n")
                    acks.flush()
                    seq += count

            try:
                await asyncio.gather(*(writer(f"{prefix}-{n}") for n in range(worlds)))
            except AosError:
                return  # the kernel was killed: expected


if __name__ == "__main__":
    address, token, prefix, worlds, ack_path = sys.argv[1:6]
    run(main(address, token, prefix, int(worlds), ack_path))
