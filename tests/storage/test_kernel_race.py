"""Two real kernels racing to own and write one world, through their Cap'n Proto API.

Every round starts with the world released; both kernels try to acquire it
at once (``Worlds.acquire`` without takeover). Whoever holds it appends one
event and releases it again; the other is refused with ``WorldMoved`` while
it is held (or, if it came late, gets it next). Afterwards the world has one
linear history: each acknowledged event exactly once, at the position it
was acknowledged with, nothing else, and the epoch went up once per win. The
race is bounded by rounds through whole kernels (each round is an acquire,
a send and a release); the same protocol races 1,000 times at the storage
level in ``test_fencing_race.py``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

from aos.errors import WorldMoved
from aos.kernel.client import run
from aos.kernel.storage import StorageConfig, WorldHeads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernelkit import SCRIPT, UNIVERSE, Session, data_dir, decoded_journal, manifest, storage_kernel  # noqa: E402

ROUNDS = 60


def test_two_kernels_race_for_one_world(bucket: str) -> None:
    """In every round exactly one kernel acquires the released world and writes it; the history is one line."""
    url = f"s3://{bucket}/race"
    dirs = [data_dir(), data_dir()]
    kernels = [storage_kernel(dirs[0], url, "racer-0").start(), storage_kernel(dirs[1], url, "racer-1").start()]
    try:
        async def race() -> tuple[list[tuple[int, int]], list, int, list]:
            wins: list[tuple[int, int]] = []  # (round, winner), in the order they wrote
            refused = [0]
            async with Session(kernels[0]) as s0, Session(kernels[1]) as s1:
                sessions = [s0, s1]
                await s0.worlds.create(manifest(), {}, "w")
                await s0.worlds.release("w")
                acked: list[tuple[int, int]] = []

                async def attempt(n: int, round_: int) -> int | None:
                    try:
                        await sessions[n].worlds.acquire("w")
                    except WorldMoved:
                        refused[0] += 1
                        return None  # the other kernel holds it now
                    world = await sessions[n].worlds.open("w")
                    seq = await world.send(SCRIPT, {"id": f"r{round_}-by-{n}"})
                    acked.append((seq, round_))
                    wins.append((round_, n))
                    await sessions[n].worlds.release("w")
                    return n

                for round_ in range(ROUNDS):
                    results = await asyncio.gather(attempt(0, round_), attempt(1, round_))
                    assert any(r is not None for r in results), f"round {round_}: nobody got the released world"
                await s0.worlds.acquire("w")
                return wins, sorted(acked), refused[0], await decoded_journal(s0.admin, UNIVERSE, "w")

        wins, acked, refused, records = run(race())
        assert {n for _, n in wins} == {0, 1}, "one kernel won every round: no race happened"
        assert refused > 0, "nobody was ever refused: the kernels never overlapped"
        print(f"\n{len(wins)} wins ({sum(n for _, n in wins)} by racer-1), {refused} refusals in {ROUNDS} rounds")
        events = [(i, r.value["id"]) for i, r in enumerate(records) if r.kind == "event"]
        assert [seq for seq, _ in events] == [seq for seq, _ in acked]  # exactly the acknowledged events, in order
        assert [name for _, name in events] == [f"r{r}-by-{n}" for r, n in wins]
        history = WorldHeads(StorageConfig.from_url(url).open()).history(UNIVERSE, "w")
        head = history.head
        assert head is not None and head.owner == "racer-0"
        assert head.epoch == 1 + len(wins) + 1  # created, one acquire per win, and the last one
        assert len(history.records) == len(records)  # S3 holds the same single history the kernel serves
    finally:
        for kernel in kernels:
            kernel.kill()
        for folder in dirs:
            shutil.rmtree(folder, ignore_errors=True)
