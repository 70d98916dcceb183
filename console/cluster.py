"""The console's side of a scheduler: cluster, universes and worlds of every host, and a world through its
introduction.

Started with a scheduler token (``aos console --connect SCHED_ADDR``), the
console holds a ``SchedulerSession`` (which follows the leader) and the
``Scheduler`` or ``Universe`` capability the token restores, nothing else.
A world's page reaches the world on whichever host runs it: the scheduler
introduces the console (``open_world``: a World token minted on that host,
read-only when the console's token is), and the console talks to the host
directly, so every world view of a kernel console works the same. When the
world moves, its old host answers ``WorldMoved`` (or no longer knows the
token) and the console asks for a new introduction and calls again, once.
Hibernate and fork need a host's Worlds capability, which an introduction
does not give; move, the scheduler's own intervention, needs a Scheduler
token.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aos.errors import InvalidToken, KernelUnavailable, PermissionDenied, WorldMoved
from aos.kernel.client import CapInfo, WorldClient
from aos.kernel.scheduler.client import SchedulerClient, SchedulerSession, UniverseClient
from aos.kernel.scheduler.errors import HostUnavailable

from aos.console import views
from aos.console.backend import LIST_TTL, Backend

PLACEMENT_STATES = ("running", "moving", "waiting")
FOLLOW_SECONDS = 10.0  # how long a call follows a world that is moving before the page gets the error
_ELSEWHERE = (WorldMoved, InvalidToken, HostUnavailable)  # the world is not (or no longer) where we called it


class SchedulerBackend(Backend):
    """``Backend`` for a scheduler token: the same world views, reached through introductions."""

    def __init__(self, address: str, token: str, tls: Any = None) -> None:
        super().__init__(address, token, tls)
        self.session: SchedulerSession | None = None

    async def connect(self) -> CapInfo:
        async with self._lock:
            if self.session is not None:
                assert self.info is not None
                return self.info
            session = await SchedulerSession.open(self.address, self._token, tls=self._tls)
            try:
                info = await session.cap.info()
            except BaseException:
                session.close()
                raise
            self.session, self.cap, self.info = session, session.cap, info
            self.conn = session.conn
            self._world.clear()
            self._lists.clear()
            return info

    def forget(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None
        self.conn = None
        self._world.clear()

    async def call(self, work: Any) -> Any:
        """``work()``, again after the scheduler or a world's host went away, or while the world moves (its
        placement says so for the moment a hand-over takes), for up to ``FOLLOW_SECONDS``."""
        await self.connect()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FOLLOW_SECONDS
        lost = False
        while True:
            try:
                return await work()
            except _ELSEWHERE:
                if loop.time() >= deadline:
                    raise
                self._world.clear()
                await asyncio.sleep(0.1)
            except KernelUnavailable:
                if lost:
                    raise
                lost = True
                self.forget()
                await self.connect()

    # --- what the token may do ------------------------------------------------------------------------

    @property
    def scheduler(self) -> SchedulerClient:
        assert self.session is not None
        return self.session.scheduler

    def permissions(self) -> dict[str, Any]:
        info = self.info
        assert info is not None
        write = not info.read_only
        return {
            "kind": info.kind, "universe": info.universe, "world": "", "readOnly": info.read_only,
            "description": f"scheduler {info.description}", "grantId": info.grant_id,
            "send": write, "grants": write, "snapshot": write, "agent": write, "pause": write,
            "move": write and info.kind == "scheduler",
            "hibernate": False, "fork": False, "unquarantine": False,
            "allUniverses": info.kind == "scheduler", "manifest": False, "audit": True, "cluster": True,
        }

    # --- capabilities ---------------------------------------------------------------------------------

    def _check_universe(self, universe: str) -> None:
        assert self.info is not None
        if self.info.kind == "universe" and universe != self.info.universe:
            raise PermissionDenied(f"this console's token is for universe {self.info.universe!r}, not {universe!r}")

    async def worlds_cap(self, universe: str) -> Any:
        raise PermissionDenied("through a scheduler the console holds no host's Worlds capability: hibernate and "
                               "fork need a console on that host's kernel")

    async def world_cap(self, universe: str, world_id: str) -> WorldClient:
        self._check_universe(universe)
        found = self._world.get((universe, world_id))
        if found is None:
            assert self.session is not None
            found = self._world[(universe, world_id)] = await self.session.open_world(universe, world_id)
        return found

    async def journal_cap(self, universe: str) -> Any:
        raise PermissionDenied("a scheduler token mints no Journal capability")

    async def universe_cap(self, universe: str) -> UniverseClient:
        self._check_universe(universe)
        assert self.session is not None
        return await self.session.universe(universe)

    # --- cluster, universes, worlds -------------------------------------------------------------------

    async def cluster(self) -> dict[str, Any]:
        """The scheduler's status: its leader, each host with its load, capacity and worlds."""
        if not isinstance(self.cap, SchedulerClient):
            raise PermissionDenied("the cluster view needs a Scheduler token; this one is for one universe")
        status = await self.scheduler.status()
        by_host: dict[str, dict[str, int]] = {}
        for u in status["universes"]:
            for p in await self.world_rows(u["universeId"]):
                counts = by_host.setdefault(p["host"], {})
                counts[p["universe"]] = counts.get(p["universe"], 0) + 1
        for host in status["hosts"]:
            host["byUniverse"] = by_host.get(host["hostId"], {})
            host["labels"] = {lab["key"]: lab["value"] for lab in host["labels"]}
        return status

    async def universes(self) -> list[dict[str, Any]]:
        if isinstance(self.cap, SchedulerClient):
            found = await self.scheduler.list_universes()
        else:
            found = [await self.cap.info()]
        out = []
        for u in found:
            rows = await self.world_rows(u["universeId"])
            out.append({"name": u["universeId"], "title": u["name"], "worlds": u["worlds"],
                        "storedBytes": u["storedBytes"], "quota": u["quota"], "createdAtMs": u["createdAtMs"],
                        **{state: sum(r["state"] == state for r in rows) for state in PLACEMENT_STATES}})
        return out

    async def world_rows(self, universe: str) -> list[dict[str, Any]]:
        cached = self._lists.get(universe)
        if cached is not None and time.monotonic() - cached[0] < LIST_TTL:
            return cached[1]
        rows = [placement_row(p) for p in await (await self.universe_cap(universe)).list_worlds()]
        self._lists[universe] = (time.monotonic(), rows)
        return rows

    world_states = PLACEMENT_STATES

    async def universes_with_worlds(self) -> list[str]:
        assert self.info is not None
        if self.info.kind == "scheduler":
            return [u["universeId"] for u in await self.scheduler.list_universes() if u["worlds"]]
        return [self.info.universe]

    async def world(self, universe: str, world_id: str) -> dict[str, Any]:
        where = await (await self.universe_cap(universe)).where(world_id)
        world = await self.world_cap(universe, world_id)
        info, traps = await world.describe()
        grants = await world.grants()
        workflows = await world.workflows()
        effects = await world.effects()
        now = time.time_ns() // 1_000_000
        for e in effects:
            e["ageMs"] = now - e["startedAtMs"] if e["startedAtMs"] else None
        hosts = [h["hostId"] for h in (await self.scheduler.status())["hosts"]] \
            if isinstance(self.cap, SchedulerClient) else []
        return {"universe": universe, "info": info, "state": views.world_state(info), "traps": traps,
                "workflows": [{"name": n, "keyed": k} for n, k in sorted(workflows.items())],
                "grants": grants, "effects": effects, "agent": views.AGENT_WORKFLOW in workflows,
                "placement": placement_row(where), "hosts": hosts,
                "manifestHistory": [{"manifestHash": info["manifestHash"], "current": True,
                                     "note": "the manifest document needs a console on the world's host kernel"}]}

    async def manifest(self, universe: str, world_id: str) -> Any:
        self.require("manifest")

    # --- scheduling -----------------------------------------------------------------------------------

    async def history(self, before: int, after: int, limit: int) -> list[dict[str, Any]]:
        if not isinstance(self.cap, SchedulerClient):
            raise PermissionDenied("the scheduling history needs a Scheduler token; this one is for one universe")
        return await self.scheduler.history(before, after, limit)

    async def move(self, universe: str, world_id: str, to_host: str) -> dict[str, Any]:
        self._check_universe(universe)
        placement = await self.scheduler.move(universe, world_id, to_host)
        self._world.pop((universe, world_id), None)  # its next call asks for a new introduction
        return placement


def placement_row(p: dict[str, Any]) -> dict[str, Any]:
    """A worlds-view row from a scheduler ``Placement``: where it runs, not its journal (the host knows that)."""
    return {"universe": p["universeId"], "id": p["worldId"], "name": p["name"], "state": p["state"],
            "host": p["hostId"], "address": p["address"], "epoch": p["epoch"], "reason": p["reason"],
            "pin": p["pin"], "labels": {lab["key"]: lab["value"] for lab in p["labels"]},
            "journal": 0, "lastEventMs": 0}


async def open_backend(address: str, token: str, tls: Any = None) -> Backend:
    """The backend for what ``token`` restores at ``address``: a kernel's, or a scheduler's (several scheduler
    addresses, ``A,B``, are a scheduler's: the session follows whichever leads)."""
    if "," in address:
        scheduler = SchedulerBackend(address, token, tls)
        await scheduler.connect()
        return scheduler
    backend = Backend(address, token, tls)
    try:
        await backend.connect()
        return backend
    except PermissionDenied as exc:
        if "scheduler" not in str(exc) and "universe" not in str(exc):
            raise
    backend.forget()
    scheduler = SchedulerBackend(address, token, tls)
    await scheduler.connect()
    return scheduler

