"""The only etcd I/O of the scheduler and of host agents (aetcd, asyncio gRPC).

``Etcd.open(url)`` connects to ``http://HOST:PORT[/PREFIX]``; every failure
to reach etcd becomes ``EtcdUnavailable``. ``Lease`` keeps a lease alive from
a task and sets ``lost`` if a refresh fails or comes too late, since whoever
holds it (a leader, a host) must then stop acting as if it still did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions

from aos.kernel.scheduler.errors import EtcdUnavailable
from aos.kernel.scheduler.layout import Keys, parse_etcd_url

log = logging.getLogger("aos.scheduler.etcd")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int


async def _guard(call: Awaitable[T], what: str) -> T:
    try:
        return await call
    except (aetcd.exceptions.ClientError, OSError) as exc:
        raise EtcdUnavailable(f"etcd: {what}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None


class Etcd:
    def __init__(self, client: aetcd.Client, keys: Keys, url: str) -> None:
        self.client = client
        self.keys = keys
        self.url = url
        self.tx = client.transactions

    @classmethod
    async def open(cls, url: str, timeout: float = 5.0) -> Etcd:
        host, port, prefix = parse_etcd_url(url)
        client = aetcd.Client(host, port, timeout=int(max(1, timeout)))
        etcd = cls(client, Keys(prefix), url)
        await _guard(client.connect(), "connect")
        return etcd

    async def close(self) -> None:
        try:
            await self.client.close()
        except Exception:  # closing a broken channel: nothing left to do
            pass

    async def get(self, key: bytes) -> Entry | None:
        got = await _guard(self.client.get(key), "get")
        return None if got is None else _entry(got)

    async def get_prefix(self, prefix: bytes) -> tuple[list[Entry], int]:
        """Every key under ``prefix`` and the store's revision at that read."""
        got = await _guard(self.client.get_prefix(prefix), "get prefix")
        revision = got.header.revision if getattr(got, "header", None) is not None else 0
        return [_entry(kv) for kv in got], revision

    async def put(self, key: bytes, value: bytes, lease: int | None = None) -> None:
        await _guard(self.client.put(key, value, lease=lease), "put")

    async def delete(self, key: bytes) -> None:
        await _guard(self.client.delete(key), "delete")

    async def txn(self, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any] = ()) -> bool:
        ok, _ = await _guard(self.client.transaction(list(compare), list(success), list(failure)), "transaction")
        return bool(ok)

    async def watch_prefix(self, prefix: bytes, start_revision: int) -> Any:
        return await _guard(self.client.watch_prefix(prefix, start_revision=start_revision, prev_kv=False), "watch")

    async def lease(self, ttl: int) -> Lease:
        granted = await _guard(self.client.lease(ttl), "lease")
        return Lease(self, granted.id, int(granted.ttl))

    async def count(self) -> int:
        got = await _guard(self.client.get_prefix(self.keys.everything), "count")
        return len(got)


def _entry(kv: Any) -> Entry:
    return Entry(bytes(kv.key), bytes(kv.value), int(kv.mod_revision), int(kv.create_revision), int(kv.lease))


class Lease:
    """A granted lease; ``keep_alive`` refreshes it every third of its TTL until cancelled or lost."""

    def __init__(self, etcd: Etcd, lease_id: int, ttl: int) -> None:
        self.etcd = etcd
        self.id = lease_id
        self.ttl = ttl
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._keep_alive())

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                reply = await asyncio.wait_for(self.etcd.client.refresh_lease(self.id), self.ttl / 3)
            except Exception as exc:  # etcd away or slow: lost only once the TTL may have run out
                if loop.time() - last >= self.ttl:
                    log.warning("event=lease_lost lease=%x error=%r", self.id, str(exc)[:200])
                    self.lost.set()
                    return
                continue
            if reply is None or getattr(reply, "TTL", 0) <= 0:
                log.warning("event=lease_expired lease=%x", self.id)
                self.lost.set()
                return
            last = loop.time()

    async def revoke(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:
            await self.etcd.client.revoke_lease(self.id)
        except Exception:  # gone already, or etcd away: it lapses by itself
            pass


async def watch_events(etcd: Etcd, prefix: bytes, start_revision: int,
                       on_event: Callable[[str, Entry], None]) -> None:
    """Feed every PUT/DELETE under ``prefix`` from ``start_revision`` to ``on_event`` until cancelled."""
    watch = await etcd.watch_prefix(prefix, start_revision)
    try:
        async for event in _events(watch):
            kv = event.kv
            on_event(str(event.kind), Entry(bytes(kv.key), bytes(kv.value), int(kv.mod_revision),
                                            int(kv.create_revision), int(kv.lease)))
    finally:
        try:
            await watch.cancel()
        except Exception:
            pass


async def _events(watch: Any) -> AsyncIterator[Any]:
    try:
        async for event in watch:
            yield event
    except (aetcd.exceptions.ClientError, OSError) as exc:
        raise EtcdUnavailable(f"etcd: watch ended: {str(exc)[:200]}") from None
