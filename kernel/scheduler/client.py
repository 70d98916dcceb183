"""Python client for ``aos-scheduler``: typed facades, leader following, and introductions.

Usage::

    async with await SchedulerSession.open("tcp:127.0.0.1:7000", token) as s:
        universe = await s.scheduler.universe("acme")
        placement, info = await universe.create_world(manifest, modules)
        world = await s.open_world("acme", placement["worldId"])   # a WorldClient on the host
        await world.send("demo/Event@1", {...})

A standby answers mutations with ``NotLeader`` naming the leader;
``SchedulerSession`` then reconnects there and repeats the call. The session
may be given several scheduler addresses (``"tcp:a:7000,tcp:b:7000"`` or a
list): it opens the first that answers and, when the one it talks to dies,
turns to the others until one leads again.
``open_world`` asks for an introduction and connects to the host directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aos.kernel.scheduler.errors  # noqa: F401  (registers the scheduler's error codes)
from aos.errors import KernelUnavailable, PermissionDenied
from aos.kernel.client import _FACADES, Connection, RemoteCap, TlsOptions, WorldClient, call, host_tls
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

    async def history(self, before: int = 0, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Placements, moves and failovers, newest first (``after < seq < before``; before 0 = none)."""
        return [e.to_dict() for e in (await call(self.cap.history(before, after, limit))).entries]

    async def read_only(self) -> SchedulerClient:
        """The same scheduler without writes (its introductions are read-only World tokens)."""
        reply = await call(self.cap.readOnly())
        return SchedulerClient(reply.scheduler, self.conn, reply.revoker)

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


def scheduler_addresses(spec: str | Sequence[str]) -> list[str]:
    """``"a,b"``, ``["a,b", "c"]`` (a repeated option) -> ``["a", "b", "c"]``, in order, once each."""
    parts = [spec] if isinstance(spec, str) else list(spec)
    found: list[str] = []
    for part in parts:
        for address in part.split(","):
            address = address.strip()
            if address and address not in found:
                found.append(address)
    if not found:
        from aos.errors import InvalidArgument
        raise InvalidArgument("no scheduler address given")
    return found


async def _connect_any(addresses: Sequence[str], token: str,
                       tls: TlsOptions | None = None) -> tuple[Connection, RemoteCap]:
    """The first of ``addresses`` that answers, with ``token`` restored on it (over TLS with ``tls``)."""
    failure: KernelUnavailable | None = None
    for address in addresses:
        try:
            conn = await Connection.open(address, tls=tls)
        except KernelUnavailable as exc:
            failure = exc
            continue
        try:
            return conn, await _restore(conn, token)
        except KernelUnavailable as exc:
            conn.close()
            failure = exc
        except BaseException:
            conn.close()
            raise
    assert failure is not None
    if len(addresses) == 1:
        raise failure
    raise KernelUnavailable(f"no scheduler answers at {', '.join(addresses)}: {failure}") from None


class SchedulerSession:
    """A connection to a scheduler holding one restored capability, that follows the leader.

    ``tls``: every scheduler connection (the first, and each to another scheduler) speaks TLS
    checked with these options (``tls:`` addresses speak TLS without them, trusting the system's
    CAs). Hosts are reached the way each advertises itself: ``tls:HOST:PORT`` (a host kernel with
    ``--tls-cert``) over TLS trusting the same CA file, checking the host's own name; ``tcp:`` plain.
    """

    def __init__(self, conn: Connection, cap: RemoteCap, token: str, addresses: Sequence[str] = (),
                 timeout: float = 30.0, tls: TlsOptions | None = None) -> None:
        self.conn = conn
        self.cap = cap
        self.token = token
        self.addresses = list(addresses) or [conn.address]
        self.timeout = timeout  # how long on_leader waits for a scheduler to lead again
        self.tls = tls
        self._hosts: dict[str, Connection] = {}

    @classmethod
    async def open(cls, address: str | Sequence[str], token: str, timeout: float = 30.0,
                   tls: TlsOptions | None = None) -> SchedulerSession:
        addresses = scheduler_addresses(address)
        conn, cap = await _connect_any(addresses, token, tls)
        return cls(conn, cap, token, addresses, timeout, tls)

    async def _reconnect(self, address: str | None = None) -> None:
        """Talk to ``address`` (the leader a standby named), else to whichever of ours answers."""
        self.conn.close()
        order = [address] if address else []
        # the one we lost goes last: it is the likeliest to be dead
        order += [a for a in self.addresses if a != self.conn.address and a not in order]
        order += [a for a in [self.conn.address] if a not in order]
        self.conn, self.cap = await _connect_any(order, self.token, self.tls)

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
        """Run ``action`` on the leading scheduler, following it for up to ``timeout``.

        A standby's ``NotLeader`` sends it to the leader it names; a lost
        scheduler (or ``leader: none`` while an election runs) to the other
        addresses. After a lost connection the action is run again, so a
        write may then find itself done already (e.g. ``AlreadyExists``);
        introductions and the other reads are safe to repeat.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                return await action(self)
            except NotLeader as exc:
                if loop.time() >= deadline:
                    raise
                target = exc.leader if exc.leader != self.conn.address else ""
                if not target:
                    await asyncio.sleep(0.05)  # no leader yet: its lease has not lapsed
            except KernelUnavailable:
                if loop.time() >= deadline or len(self.addresses) == 1:
                    raise  # no other scheduler to turn to
                target = ""
            while True:
                try:
                    await self._reconnect(target or None)
                    break
                except KernelUnavailable:
                    if loop.time() >= deadline:
                        raise
                    target = ""
                    await asyncio.sleep(0.05)

    async def open_world(self, universe: str, world: str) -> WorldClient:
        """A World capability on the host that runs the world, through an introduction."""
        async def introduce(session: SchedulerSession) -> dict[str, Any]:
            return await (await session.universe(universe)).introduce(world)

        intro = await self.on_leader(introduce)
        conn = self._hosts.get(intro["address"])
        if conn is None:
            address = intro["address"]
            conn = self._hosts[address] = await Connection.open(address, tls=host_tls(address, self.tls))
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
        if self._client is not None and self.session._hosts.get(self._client.conn.address) is not self._client.conn:
            self._client = None  # another handle dropped that host's connection (it saw the world move or die)
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
                except KernelUnavailable:
                    # a write on a lost connection: its outcome is the caller's to judge, but the next
                    # call must not go to the dead host again (it would fail at once, forever)
                    self.session.forget_host(client.conn.address)
                    self._client = None
                    raise

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
