"""``Journal`` over Cap'n Proto: conversion, scope checks and tail subscriptions."""

from __future__ import annotations

import logging
from typing import Any

from aos.caps.held import HeldImpl
from aos.caps.gateway import HandleImpl
from aos.errors import PayloadTooLarge, PermissionDenied
from aos.kernel.names import check_name, key
from aos.kernel.rpc import remote
from aos.schemas import journal_capnp

log = logging.getLogger("aos.kernel.journal")


class JournalImpl(HeldImpl, journal_capnp.Journal.Server):  # type: ignore[misc,name-defined]
    def _world(self, world: str, write: bool = False) -> str:
        check_name(world, "world id")
        scope = self.grant.scope
        if scope.world and scope.world != world:
            raise PermissionDenied(f"this journal capability is limited to world {scope.world}")
        if write and scope.read_only:
            raise PermissionDenied("this journal capability is read-only")
        return world

    @remote()
    async def append(self, world: str, expectedSeq: int, epoch: int, records: Any, _context: Any, **kwargs: Any) -> int:
        world = self._world(world, write=True)
        limits = self.services.limits
        if len(records) > limits.max_records_per_append:
            raise PayloadTooLarge(f"{len(records)} records in one append; the limit is {limits.max_records_per_append}")
        batch = [bytes(record) for record in records]
        if sum(map(len, batch)) > limits.max_message_bytes:
            raise PayloadTooLarge(f"records exceed {limits.max_message_bytes} bytes in one append")
        return await self.services.journal.append(self.grant.scope.universe, world, expectedSeq, epoch, batch)

    @remote()
    async def read(self, world: str, fromSeq: int, limit: int, _context: Any, **kwargs: Any) -> Any:
        world = self._world(world)
        cap = self.services.limits.max_records_per_read
        limit = cap if limit == 0 else min(limit, cap)
        records, next_seq = self.services.journal.read(self.grant.scope.universe, world, fromSeq, limit)
        return records, next_seq

    @remote()
    async def tail(self, world: str, fromSeq: int, subscriber: Any, _context: Any, **kwargs: Any) -> Any:
        world = self._world(world)
        universe = self.grant.scope.universe
        self.services.journal.head(universe, world)  # UnknownWorld now, not inside the task
        task = self.services.subscribe(self.grant, _tail(self, universe, world, fromSeq, subscriber))
        return HandleImpl(task)

    @remote()
    async def head(self, world: str, _context: Any, **kwargs: Any) -> Any:
        head = self.services.journal.head(self.grant.scope.universe, self._world(world))
        return head.durable, head.epoch

    @remote()
    async def fence(self, world: str, epoch: int, _context: Any, **kwargs: Any) -> int:
        world = self._world(world, write=True)
        return await self.services.journal.fence(self.grant.scope.universe, world, epoch)

    @remote()
    async def list(self, after: str, limit: int, _context: Any, **kwargs: Any) -> Any:
        scope = self.grant.scope
        if after:
            check_name(after, "world id")
        limit = 1000 if limit == 0 else min(limit, 10_000)
        if scope.world:
            exists = self.services.journal.exists(scope.universe, scope.world)
            return [scope.world] if exists and scope.world > after else []
        return self.services.journal.worlds(scope.universe, after, limit)

    @remote()
    async def restrict(self, world: str, readOnly: bool, _context: Any, **kwargs: Any) -> Any:
        if world:
            check_name(world, "world id")
        narrower: dict[str, Any] = {"read_only": readOnly or self.grant.scope.read_only}
        if world:
            narrower["world"] = world
        return self.services.attenuate(self.grant, **narrower)


async def _tail(cap: JournalImpl, universe: str, world: str, from_seq: int, subscriber: Any) -> None:
    journal = cap.services.journal
    batch = cap.services.limits.max_records_per_read
    world_key = key(universe, world)
    seq = from_seq
    while True:
        cap.grant.check()
        arrived = journal.committed.wait(world_key)  # take the waiter before reading: no lost wake-up
        records, durable = journal.read(universe, world, seq, min(batch, 256))
        if not records:
            await arrived
            continue
        request = subscriber.push_request()
        request.seq = seq
        out = request.init("records", len(records))
        for i, record in enumerate(records):
            out[i] = record
        await request.send()
        seq += len(records)

