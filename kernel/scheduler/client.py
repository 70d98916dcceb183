"""Python client for ``aos-scheduler``: typed facades, leader following, and introductions.

Usage::

    async with await SchedulerSession.open("tcp:127.0.0.1:7000", token) as s:
        universe = await s.scheduler.universe("acme")
        placement, info = await universe.create_world(manifest, modules)
        world = await s.open_world("acme", placement["worldId"])   # a WorldClient on the host
        await world.send("demo/Event@1", {...})

A standby answers mutations with ``NotLeader`` naming the leader;
``SchedulerSession`` then reconnects there and repeats the call once.
``open_world`` asks for an introduction and connects to the host directly.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aos.kernel.scheduler.errors  # noqa: F401  (registers the scheduler's error codes)
from aos.errors import PermissionDenied
from aos.kernel.client import _FACADES, Connection, RemoteCap, WorldClient, call
from aos.kernel.scheduler.errors import NotLeader
from aos.schemas import scheduler_capnp

T = TypeVar("T")


def _labels(labels: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted((labels or {}).items())]


class SchedulerClient(RemoteCap):
    interface = scheduler_capnp.Scheduler

    async def status(self) -> dict[str, Any]:
        return (await call(self.cap.status())).status.to_dict()  # type: ignore[no-any-return]

    async def create_universe(self, universe: str, name: str = "", worlds: int = 0, bytes_: int = 0) -> dict[str, Any]:
        reply = await call(self.cap.createUniverse(universe, name, {"worlds": worlds, "bytes": bytes_}))
        return reply.info.to_dict()  # type: ignore[no-any-return]

    async def list_universes(self) -> list[dict[str, Any]]:
        return [u.to_dict() for u in (await call(self.cap.listUniverses())).universes]

    async def delete_universe(self, universe: str) -> None:
        await call(self.cap.deleteUniverse(universe))

    async def set_quota(self, universe: str, worlds: int = 0, bytes_: int = 0) -> dict[str, Any]:
        return (await call(self.cap.setQuota(universe, {"worlds": worlds, "bytes": bytes_}))).info.to_dict()  # type: ignore[no-any-return]

    async def universe(self, universe: str) -> UniverseClient:
        reply = await call(self.cap.universe(universe))
        return UniverseClient(reply.universe, self.conn, reply.revoker)

    async def drain(self, host: str, draining: bool = True) -> None:
        await call(self.cap.drain(host, draining))

    async def move(self, universe: str, world: str, to_host: str = "") -> dict[str, Any]:
        return (await call(self.cap.move(universe, world, to_host))).placement.to_dict()  # type: ignore[no-any-return]

    async def join(self, advert: dict[str, Any], kernel_token: str) -> tuple[str, int]:
        reply = await call(self.cap.join(advert, kernel_token))
        return reply.etcd, reply.leaseTtl


class UniverseClient(RemoteCap):
    interface = scheduler_capnp.Universe

    async def info(self) -> dict[str, Any]:
        return (await call(self.cap.info())).info.to_dict()  # type: ignore[no-any-return]

    async def create_world(self, manifest: dict[str, Any] | str, modules: dict[str, bytes] | None = None,
                           world_id: str = "", name: str = "", labels: dict[str, str] | None = None,
                           pin: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        mods = [{"hash": h, "wasm": data} for h, data in (modules or {}).items()]
        reply = await call(self.cap.createWorld(text, mods, world_id, name, _labels(labels), pin))
        return reply.placement.to_dict(), reply.info.to_dict()

    async def list_worlds(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in (await call(self.cap.listWorlds())).worlds]

    async def where(self, world: str) -> dict[str, Any]:
        return (await call(self.cap.where(world))).placement.to_dict()  # type: ignore[no-any-return]

    async def introduce(self, world: str) -> dict[str, Any]:
        return (await call(self.cap.introduce(world))).introduction.to_dict()  # type: ignore[no-any-return]

    async def delete_world(self, world: str) -> None:
        await call(self.cap.deleteWorld(world))


class SchedulerSession:
    """A connection to a scheduler holding one restored capability, that follows the leader."""

    def __init__(self, conn: Connection, cap: RemoteCap, token: str) -> None:
        self.conn = conn
        self.cap = cap
        self.token = token
        self._hosts: dict[str, Connection] = {}

    @classmethod
    async def open(cls, address: str, token: str) -> SchedulerSession:
        conn = await Connection.open(address)
        try:
            cap = await _restore(conn, token)
        except BaseException:
            conn.close()
            raise
        return cls(conn, cap, token)

    @property
    def scheduler(self) -> SchedulerClient:
        if not isinstance(self.cap, SchedulerClient):
            raise PermissionDenied("this token is for one universe, not the scheduler")
        return self.cap

    async def universe(self, universe: str) -> UniverseClient:
        if isinstance(self.cap, UniverseClient):
            info = await self.cap.info()
            if info["universeId"] != universe:
                raise PermissionDenied(f"this token is for universe {info['universeId']}, not {universe}")
            return self.cap
        return await self.scheduler.universe(universe)

    async def on_leader(self, action: Callable[[SchedulerSession], Awaitable[T]]) -> T:
        """Run ``action``; if this scheduler stands by, reconnect to the leader and run it again."""
        try:
            return await action(self)
        except NotLeader as exc:
            if not exc.leader or exc.leader == self.conn.address:
                raise
            self.conn.close()
            self.conn = await Connection.open(exc.leader)
            self.cap = await _restore(self.conn, self.token)
            return await action(self)

    async def open_world(self, universe: str, world: str) -> WorldClient:
        """A World capability on the host that runs the world, through an introduction."""
        async def introduce(session: SchedulerSession) -> dict[str, Any]:
            return await (await session.universe(universe)).introduce(world)

        intro = await self.on_leader(introduce)
        conn = self._hosts.get(intro["address"])
        if conn is None:
            conn = self._hosts[intro["address"]] = await Connection.open(intro["address"])
        cap, info = await conn.restore(intro["token"])
        if info.kind != "world":
            raise PermissionDenied(f"the introduction's token is for a {info.kind}, not a world")
        return WorldClient(cap.cast_as(WorldClient.interface), conn)

    def follow(self, universe: str, world: str, timeout: float = 30.0) -> FollowingWorld:
        """A ``WorldClient`` that follows the world when it moves or its host dies (see ``FollowingWorld``)."""
        return FollowingWorld(self, universe, world, timeout)

    def forget_host(self, address: str) -> None:
        conn = self._hosts.pop(address, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self.conn.close()
        for conn in self._hosts.values():
            conn.close()
        self._hosts.clear()

    async def __aenter__(self) -> SchedulerSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# calls that change nothing: repeating one after a lost connection is safe
_READS = frozenset({"state", "cells", "journal", "read_raw", "describe", "grants", "workflows", "info"})


class FollowingWorld:
    """A world wherever it runs: every ``WorldClient`` method, re-introduced when the world moves.

    A call refused because the world is not on that host any more (``WorldMoved``,
    a token the host no longer knows, no live host yet) is made again on the host
    the scheduler names now, until ``timeout``. A read is also repeated after a
    lost connection (the host died); a write (``send``...) is not, since it may
    have been journaled before the connection broke: that ``KernelUnavailable``
    is the caller's to judge.
    """

    def __init__(self, session: SchedulerSession, universe: str, world: str, timeout: float = 30.0) -> None:
        self.session = session
        self.universe = universe
        self.world = world
        self.timeout = timeout
        self._client: WorldClient | None = None
        self.moves = 0  # how often it followed the world

    async def _current(self) -> WorldClient:
        if self._client is None:
            self._client = await self.session.open_world(self.universe, self.world)
        return self._client

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_") or not hasattr(WorldClient, name):
            raise AttributeError(name)

        async def call_following(*args: Any, **kwargs: Any) -> Any:
            import asyncio

            from aos.errors import InvalidToken, KernelUnavailable, WorldMoved
            from aos.kernel.scheduler.errors import HostUnavailable

            retry: tuple[type[BaseException], ...] = (WorldMoved, InvalidToken, HostUnavailable)
            if name in _READS:
                retry += (KernelUnavailable,)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            while True:
                try:
                    # reaching the world sends nothing: any failure here is safe to try again
                    client = await self._current()
                except (*retry, KernelUnavailable):
                    if loop.time() >= deadline:
                        raise
                    await asyncio.sleep(0.05)
                    continue
                try:
                    return await getattr(client, name)(*args, **kwargs)
                except retry:
                    if loop.time() >= deadline:
                        raise
                    self.session.forget_host(client.conn.address)
                    self._client = None
                    self.moves += 1
                    await asyncio.sleep(0.05)

        return call_following


# so Connection.restore_with_info (the CLI, aos-shell) knows what a scheduler's tokens restore
_FACADES.update({"scheduler": SchedulerClient, "universe": UniverseClient})


async def _restore(conn: Connection, token: str) -> RemoteCap:
    cap, info = await conn.restore(token)
    if info.kind == "scheduler":
        return SchedulerClient(cap.cast_as(SchedulerClient.interface), conn)
    if info.kind == "universe":
        return UniverseClient(cap.cast_as(UniverseClient.interface), conn)
    raise PermissionDenied(f"that token is for a {info.kind} capability, not a scheduler or universe")
