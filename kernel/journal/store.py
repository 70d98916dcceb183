"""Per-world append-only journals with optimistic concurrency and epoch fencing.

How it works: each world has a head (next sequence number, epoch) kept in
memory and in the ``heads`` family. ``append`` checks the epoch and the
expected sequence number against the in-memory head, reserves the sequence
numbers at once (so a second append in the same turn validates against the
first), and hands the records plus the new head to the group committer as
one atomic write. Readers only ever see what RocksDB has, which is what has
been synced; ``durable`` tracks that for tails.
"""

from __future__ import annotations

import struct
from itertools import islice
from dataclasses import dataclass

from aos.errors import InvalidArgument, SeqConflict, StaleEpoch, UnknownWorld
from aos.kernel.names import key, seq_key
from aos.kernel.notify import Notifier
from aos.kernel.store import GroupCommitter, KernelStore, Op

_HEAD = struct.Struct(">QQ")


@dataclass(slots=True)
class WorldHead:
    next_seq: int  # reserved: includes appends still syncing
    epoch: int
    durable: int  # records [0, durable) are on disk


class JournalStore:
    def __init__(self, store: KernelStore, committer: GroupCommitter) -> None:
        self._store = store
        self._committer = committer
        self._heads: dict[bytes, WorldHead] = {}
        self.committed = Notifier()
        self.records_committed = 0
        self.appends = self.bytes_appended = 0  # read by kernel/metrics.py

    def _head(self, world_key: bytes) -> WorldHead | None:
        head = self._heads.get(world_key)
        if head is None:
            raw = self._store.get("heads", world_key)
            if raw is None:
                return None
            next_seq, epoch = _HEAD.unpack(raw)
            head = self._heads[world_key] = WorldHead(next_seq, epoch, next_seq)
        return head

    def head(self, universe: str, world: str) -> WorldHead:
        head = self._head(key(universe, world))
        if head is None:
            raise UnknownWorld(f"no journal {world!r} in universe {universe}")
        return head

    def forget(self, universe: str, world: str) -> None:
        """Drop a journal's cached head: its records were replaced or removed under the store (a world
        that arrived from or left for another kernel on shared storage); the next use reads it again."""
        self._heads.pop(key(universe, world), None)

    def exists(self, universe: str, world: str) -> bool:
        return self._head(key(universe, world)) is not None

    def prepare_append(
        self, universe: str, world: str, expected_seq: int, epoch: int, records: list[bytes]
    ) -> tuple[int, list[Op]]:
        """Validate and reserve sequence numbers now; return the first seq and the ops to commit.

        The reservation is immediate, so a writer may prepare its next append
        before this one is durable (pipelining); ``finish_append`` must follow
        the commit of the returned ops.
        """
        return self._prepare(key(universe, world), expected_seq, epoch, records)

    def _prepare(self, world_key: bytes, expected_seq: int, epoch: int, records: list[bytes]) -> tuple[int, list[Op]]:
        if not records:
            raise InvalidArgument("append needs at least one record")
        head = self._head(world_key)
        if head is None:
            head = self._heads[world_key] = WorldHead(0, epoch, 0)
        if epoch < head.epoch:
            raise StaleEpoch(f"journal {_world(world_key)}: epoch {epoch} is older than the journal's epoch {head.epoch}")
        if expected_seq != head.next_seq:
            raise SeqConflict(f"journal {_world(world_key)}: expected seq {expected_seq}, but the next seq is {head.next_seq}")
        first = head.next_seq
        end = head.next_seq = first + len(records)
        head.epoch = epoch
        self.appends += 1
        if len(records) == 1:  # the common single-record call, without the per-record machinery
            self.bytes_appended += len(records[0])
            ops = [Op("journal", world_key + first.to_bytes(8, "big"), records[0])]
        else:
            self.bytes_appended += sum(map(len, records))
            ops = [Op("journal", seq_key(world_key, first + i), record) for i, record in enumerate(records)]
        ops.append(Op("heads", world_key, _HEAD.pack(end, epoch)))
        return first, ops

    def finish_append(self, universe: str, world: str, first: int, count: int) -> None:
        """Mark an append durable (its ops were committed) and wake the world's tails."""
        self._finish(key(universe, world), first, count)

    def _finish(self, world_key: bytes, first: int, count: int) -> None:
        head = self._heads[world_key]
        # turns complete in order, so durable only moves forward
        head.durable = max(head.durable, first + count)
        self.records_committed += count
        self.committed.notify(world_key)

    async def append(self, universe: str, world: str, expected_seq: int, epoch: int, records: list[bytes]) -> int:
        world_key = key(universe, world)  # once per call, not once per step
        first, ops = self._prepare(world_key, expected_seq, epoch, records)
        await self._committer.enqueue(ops)
        self._finish(world_key, first, len(records))
        return first

    async def fence(self, universe: str, world: str, epoch: int) -> int:
        world_key = key(universe, world)
        head = self._head(world_key)
        if head is None:
            head = self._heads[world_key] = WorldHead(0, epoch, 0)
        if epoch < head.epoch:
            raise StaleEpoch(f"journal {world}: epoch {epoch} is older than the journal's epoch {head.epoch}")
        head.epoch = epoch
        await self._committer.commit([Op("heads", world_key, _HEAD.pack(head.next_seq, epoch))])
        return head.next_seq

    def read(self, universe: str, world: str, from_seq: int, limit: int) -> tuple[list[bytes], int]:
        """Up to ``limit`` durable records from ``from_seq``, and the durable next seq."""
        head = self.head(universe, world)
        durable = head.durable
        if from_seq >= durable:
            return [], durable
        world_key = key(universe, world)
        stop = min(durable, from_seq + limit)
        rows = self._store.scan("journal", world_key, seq_key(world_key, from_seq))
        return [value for _, value in islice(rows, stop - from_seq)], durable

    def worlds(self, universe: str, after: str, limit: int) -> list[str]:
        prefix = key(universe)
        start = prefix + (after.encode() + b"\x01" if after else b"")
        names = []
        for world_key, _ in self._store.scan("heads", prefix, start):
            names.append(world_key[len(prefix) : -1].decode())
            if len(names) >= limit:
                break
        return names

    def count(self) -> int:
        return sum(1 for _ in self._store.scan("heads", b""))


def _world(world_key: bytes) -> str:
    """The journal name in a ``key(universe, world)`` (for messages)."""
    return world_key.rstrip(b"\x00").rsplit(b"\x00", 1)[-1].decode()
