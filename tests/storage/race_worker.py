"""One racer of the fencing race test, run as its own process.

Usage: ``race_worker.py URL MODE NAME COUNT ACKS SEED``. Prints ``ready``,
waits for a line on stdin (so both racers start together), then writes until
it has COUNT acknowledged records, appending one line per acknowledgement to
ACKS, flushed before the next write, so ACKS is exactly what was acknowledged.
Prints ``done <acquisitions> <reopens>`` at the end.

MODE ``log``: both racers write one log ("shared"); a fenced racer reopens
the log, which fences the other. Ack line: ``log_seq epoch payload``.

MODE ``world``: each racer has its own log and both race for one world; an
acquire steals it from the other (fencing the other's log) unless it was
released. Ack line: ``world_seq payload`` per record.
"""

from __future__ import annotations

import random
import sys

from aos.errors import Fenced, OwnershipLost
from aos.kernel.storage import ObjectLogs, StorageConfig, WorldHeads
from aos.kernel.storage.layout import journal_op

UNIVERSE, WORLD = "race", "w"


def open_log(logs: ObjectLogs, log: str, name: str):  # type: ignore[no-untyped-def]
    while True:
        try:
            return logs.open(log, name)
        except Fenced:
            continue  # the other racer opened in between: open past it


def race_log(url: str, name: str, count: int, acks_path: str) -> tuple[int, int]:
    logs = ObjectLogs(StorageConfig.from_url(url).open())
    writer = open_log(logs, "shared", name)
    reopens = acked = 0
    with open(acks_path, "w") as acks:
        while acked < count:
            payload = f"{name}:{acked}"
            try:
                seq = writer.append([journal_op(UNIVERSE, WORLD, acked, payload.encode())])
            except Fenced:
                writer = open_log(logs, "shared", name)
                reopens += 1
                continue
            acks.write(f"{seq} {writer.epoch} {payload}\n")
            acks.flush()
            acked += 1
    return 0, reopens


def race_world(url: str, name: str, count: int, acks_path: str, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    store = StorageConfig.from_url(url).open()
    logs = ObjectLogs(store)
    heads = WorldHeads(store, logs, open_log(logs, name, name))
    acquisitions = reopens = acked = 0
    with open(acks_path, "w") as acks:
        while acked < count:
            try:
                own = heads.owned(UNIVERSE, WORLD)
                if own is None:
                    own = heads.acquire(UNIVERSE, WORLD)
                    acquisitions += 1
                records = [f"{name}:{acked + i}".encode() for i in range(rng.randint(1, 3))]
                heads.commit_turn({own: records})
                first = own.committed - len(records)
                acks.write("".join(f"{first + i} {r.decode()}\n" for i, r in enumerate(records)))
                acks.flush()
                acked += len(records)
                roll = rng.random()
                if roll < 0.3:
                    heads.release(own)
                elif roll < 0.5:
                    heads.checkpoint(own)
            except Fenced:
                heads = WorldHeads(store, logs, open_log(logs, name, name))
                reopens += 1
            except OwnershipLost:
                continue  # stolen between our acquire and our checkpoint or release
    return acquisitions, reopens


def main() -> None:
    url, mode, name, count, acks_path, seed = sys.argv[1:7]
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "log":
        acquisitions, reopens = race_log(url, name, int(count), acks_path)
    else:
        acquisitions, reopens = race_world(url, name, int(count), acks_path, int(seed))
    print(f"done {acquisitions} {reopens}", flush=True)


if __name__ == "__main__":
    main()
