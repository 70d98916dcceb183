"""The console's side of the kernel: the capability its token restores, and the calls each view makes.

The console holds exactly what its token restores and mints nothing beyond
what that capability can mint itself: a Kernel token reaches every universe
(and Journal and CAS capabilities for the audit log and manifests), a
Worlds token one universe, a World token one world. ``permissions`` says
which write actions the page may offer; the kernel refuses the rest anyway
(a read-only capability refuses every write, whatever the page sends).
A lost connection is reopened, and the token restored again, on the next call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aos.errors import InvalidArgument, KernelUnavailable, PermissionDenied
from aos.kernel.client import CapInfo, Connection, KernelClient, TlsOptions, WorldClient, WorldsClient
from aos.kernel.world import cbor

from aos.console import views

LIST_TTL = 2.0  # seconds a universe's world list is reused (paging 10,000 worlds must not re-list each page)
JOURNAL_PAGE = 512
TRANSCRIPT_SCAN = 16_384  # records read backwards at most to build a transcript


class Backend:
    def __init__(self, address: str, token: str, tls: TlsOptions | None = None) -> None:
        self.address = address
        self._token = token
        self._tls = tls
        self.conn: Connection | None = None
        self.cap: Any = None
        self.info: CapInfo | None = None
        self._worlds: dict[str, Any] = {}
        self._world: dict[tuple[str, str], WorldClient] = {}
        self._lists: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._rates: dict[str, tuple[float, int, float]] = {}
        self._lock = asyncio.Lock()

    # --- connection ---------------------------------------------------------------------------------

    async def connect(self) -> CapInfo:
        """Open the connection and restore the token; refuses tokens for other kinds of capability."""
        async with self._lock:
            if self.conn is not None:
                assert self.info is not None
                return self.info
            conn = await Connection.open(self.address, tls=self._tls)
            try:
                cap, info = await conn.restore_with_info(self._token)
            except BaseException:
                conn.close()
                raise
            if info.kind not in ("kernel", "worlds", "world"):
                conn.close()
                raise PermissionDenied(f"this token holds a {info.kind} capability; the console needs a kernel, "
                                       "worlds or world token")
            self.conn, self.cap, self.info = conn, cap, info
            self._worlds.clear()
            self._world.clear()
            self._lists.clear()
            return info

    def forget(self) -> None:
        """Drop the connection (after KernelUnavailable): the next call reconnects."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    async def call(self, work: Any) -> Any:
        """Run ``work()`` (a coroutine function using this backend), reconnecting once if the kernel went away."""
        await self.connect()
        try:
            return await work()
        except KernelUnavailable:
            self.forget()
            await self.connect()
            return await work()

    # --- what the token may do ---------------------------------------------------------------------------

    def permissions(self) -> dict[str, Any]:
        info = self.info
        assert info is not None
        write = not info.read_only
        many = info.kind in ("kernel", "worlds")
        return {
            "kind": info.kind, "universe": info.universe, "world": info.world, "readOnly": info.read_only,
            "description": info.description, "grantId": info.grant_id,
            "send": write, "grants": write, "snapshot": write, "agent": write, "pause": write, "move": False,
            "hibernate": write and many, "fork": write and many, "unquarantine": write and many,
            "allUniverses": info.kind == "kernel", "manifest": info.kind == "kernel", "audit": True,
        }

    def require(self, action: str) -> None:
        """Refuse, before any call, an action the token cannot do (the kernel would refuse it too)."""
        if not self.permissions().get(action):
            raise PermissionDenied(f"this console's token ({self.info.description if self.info else '?'}) "
                                   f"cannot {action}")

    # --- capabilities -----------------------------------------------------------------------------------------

    def _check_universe(self, universe: str) -> None:
        assert self.info is not None
        if self.info.kind != "kernel" and universe != self.info.universe:
            raise PermissionDenied(f"this console's token is for universe {self.info.universe!r}, not {universe!r}")

    async def worlds_cap(self, universe: str) -> WorldsClient:
        self._check_universe(universe)
        assert self.info is not None
        if self.info.kind == "world":
            raise PermissionDenied(f"this console's token is for world {self.info.world!r} only")
        if self.info.kind == "worlds":
            return self.cap  # type: ignore[no-any-return]
        found = self._worlds.get(universe)
        if found is None:
            found = self._worlds[universe] = await self.cap.worlds(universe)
        return found  # type: ignore[no-any-return]

    async def world_cap(self, universe: str, world_id: str) -> WorldClient:
        self._check_universe(universe)
        assert self.info is not None
        if self.info.kind == "world":
            if world_id != self.info.world:
                raise PermissionDenied(f"this console's token is for world {self.info.world!r}, not {world_id!r}")
            return self.cap  # type: ignore[no-any-return]
        found = self._world.get((universe, world_id))
        if found is None:
            found = self._world[(universe, world_id)] = await (await self.worlds_cap(universe)).open(world_id)
        return found

    async def journal_cap(self, universe: str) -> Any:
        assert isinstance(self.cap, KernelClient)
        return await self.cap.journal(universe)

    # --- universes and worlds ----------------------------------------------------------------------------------

    async def universes(self) -> list[dict[str, Any]]:
        assert self.info is not None
        now = time.monotonic()
        if self.info.kind == "kernel":
            found = await self.cap.universes()
        else:
            rows = await self.world_rows(self.info.universe)
            found = [{"name": self.info.universe, "worlds": len(rows),
                      "awake": sum(r["state"] == "awake" for r in rows),
                      "quarantined": sum(r["state"] == "quarantined" for r in rows),
                      "events": None, "receipts": None, "casBytes": None, "casBlobs": None, "casCounted": False}]
        for u in found:
            u["hibernated"] = u["worlds"] - u["awake"] - u["quarantined"]
            u["eventsPerSecond"] = self._rate(u["name"], now, u["events"])
        return found  # type: ignore[no-any-return]

    def _rate(self, universe: str, now: float, events: int | None) -> float | None:
        """Events per second between this call and one at least a second before (None until then)."""
        if events is None:
            return None
        last = self._rates.get(universe)
        if last is None:
            self._rates[universe] = (now, events, -1.0)
            return None
        then, before, rate = last
        if now - then >= 1.0:
            rate = (events - before) / (now - then)
            self._rates[universe] = (now, events, rate)
        return rate if rate >= 0 else None

    async def world_rows(self, universe: str) -> list[dict[str, Any]]:
        cached = self._lists.get(universe)
        if cached is not None and time.monotonic() - cached[0] < LIST_TTL:
            return cached[1]
        assert self.info is not None
        if self.info.kind == "world":
            info, _ = await self.cap.describe()
            rows = [views.world_row(universe, info)]
        else:
            rows = [views.world_row(universe, w) for w in await (await self.worlds_cap(universe)).list()]
        self._lists[universe] = (time.monotonic(), rows)
        return rows

    def invalidate(self, universe: str) -> None:
        self._lists.pop(universe, None)

    # the world states the worlds view filters by (a scheduler's backend lists placements instead)
    world_states: tuple[str, ...] = views.STATES

    async def universes_with_worlds(self) -> list[str]:
        """Every universe this console's capability reaches that holds a world."""
        assert self.info is not None
        if self.info.kind == "kernel":
            return [u["name"] for u in await self.cap.universes() if u["worlds"]]
        return [self.info.universe]

    async def worlds(self, universe: str, state: str, query: str, sort: str, descending: bool,
                     offset: int, limit: int) -> dict[str, Any]:
        if state and state not in self.world_states:
            raise InvalidArgument(f"state {state!r}: use one of {', '.join(self.world_states)}")
        universes = [universe] if universe else await self.universes_with_worlds()
        rows: list[dict[str, Any]] = []
        for name in universes:
            rows.extend(await self.world_rows(name))
        total, page = views.filter_worlds(rows, state, query, sort, descending, offset, min(max(limit, 1), 500))
        return {"total": total, "offset": offset, "rows": page, "universes": universes}

    # --- one world -------------------------------------------------------------------------------------------

    async def world(self, universe: str, world_id: str) -> dict[str, Any]:
        world = await self.world_cap(universe, world_id)
        assert self.info is not None
        listed = None
        if self.info.kind != "world":  # the list tells a sleeping world's facts without waking it
            self.invalidate(universe)  # fresh: a send since the last list may have woken it
            listed = next((r for r in await self.world_rows(universe) if r["id"] == world_id), None)
        grants = await world.grants()
        if listed is not None and listed["state"] != "awake":
            info = {"worldId": world_id, "name": listed["name"], "manifestHash": listed["manifestHash"],
                    "awake": False, "journalHeight": listed["journal"], "lastEventMs": listed["lastEventMs"],
                    "snapshot": listed["snapshot"], "forkedFrom": listed["forkedFrom"],
                    "quarantined": listed["quarantined"], "paused": listed["paused"],
                    "queued": None}
            traps, workflows, effects = [], {}, []
        else:
            info, traps = await world.describe()
            workflows = await world.workflows()
            effects = await world.effects()
        now = time.time_ns() // 1_000_000
        for e in effects:
            e["ageMs"] = now - e["startedAtMs"] if e["startedAtMs"] else None
        return {"universe": universe, "info": info, "state": views.world_state(info), "traps": traps,
                "workflows": [{"name": n, "keyed": k} for n, k in sorted(workflows.items())],
                "grants": [dict(g, params=g["params"]) for g in grants], "effects": effects,
                "agent": views.AGENT_WORKFLOW in workflows,
                "manifestHistory": [{"manifestHash": info["manifestHash"], "current": True,
                                     "note": "manifests cannot change after creation yet"}]}

    async def manifest(self, universe: str, world_id: str) -> Any:
        """The world's canonical manifest from its universe's CAS (a Kernel token mints the Cas capability)."""
        self.require("manifest")
        world = await self.world_cap(universe, world_id)
        info, _ = await world.describe()
        cas = await self.cap.cas(universe)
        from aos.kernel.host import jsonvalue

        return jsonvalue.to_jsonable(cbor.decode(await cas.get(info["manifestHash"])))

    async def journal(self, universe: str, world_id: str, before: int | None, limit: int) -> dict[str, Any]:
        """A page of records ending before ``before`` (default: the end), newest last; never the whole journal."""
        world = await self.world_cap(universe, world_id)
        limit = min(max(limit, 1), 500)
        _, end = await world.journal(0, 1)
        stop = end if before is None else min(before, end)
        start = max(0, stop - limit)
        records, _ = await world.journal(start, stop - start) if stop > start else ([], end)
        return {"from": start, "to": start + len(records), "height": end,
                "rows": [views.journal_row(r) for r in records]}

    async def record(self, universe: str, world_id: str, seq: int) -> Any:
        from aos.kernel.host import jsonvalue

        world = await self.world_cap(universe, world_id)
        records, _ = await world.journal(seq, 1)
        if not records:
            raise InvalidArgument(f"no record at {seq}")
        return jsonvalue.to_jsonable(records[0])

    async def state(self, universe: str, world_id: str, workflow: str, key: str) -> dict[str, Any]:
        from aos.kernel.host import jsonvalue

        world = await self.world_cap(universe, world_id)
        keyed = (await world.workflows()).get(workflow)
        if keyed is None:
            raise InvalidArgument(f"no workflow {workflow!r} in world {world_id}")
        if keyed and not key:
            return {"workflow": workflow, "keyed": True, "cells": jsonvalue.to_jsonable(await world.cells(workflow))}
        value = await world.state(workflow, jsonvalue.loads(key, "key") if key else None)
        return {"workflow": workflow, "keyed": keyed, "key": key, "value": jsonvalue.to_jsonable(value)}

    # --- agents ------------------------------------------------------------------------------------------------

    async def sessions(self, universe: str, world_id: str) -> list[dict[str, Any]]:
        world = await self.world_cap(universe, world_id)
        keys = await world.cells(views.AGENT_WORKFLOW)
        out = []
        for key in sorted(keys, key=str):
            out.append(views.session_summary(key, await world.state(views.AGENT_WORKFLOW, key)))
        return out

    async def transcript(self, universe: str, world_id: str, session: str, limit: int) -> dict[str, Any]:
        """The session's last ``limit`` events (and its subagents'), read backwards in pages."""
        world = await self.world_cap(universe, world_id)
        _, end = await world.journal(0, 1)
        events: list[dict[str, Any]] = []
        stop, scanned = end, 0
        while stop > 0 and len(events) < limit and scanned < TRANSCRIPT_SCAN:
            start = max(0, stop - JOURNAL_PAGE)
            records, _ = await world.journal(start, stop - start)
            page = [e for e in map(views.agent_event, records)
                    if e is not None and (e["session"] == session or str(e["session"]).startswith(session + "/"))]
            events[:0] = page
            scanned += stop - start
            stop = start
        events = events[-limit:]
        mine = [e for e in events if e["session"] == session]
        totals = views.usage_totals(mine)
        state = await world.state(views.AGENT_WORKFLOW, session)
        summary = views.session_summary(session, state)
        totals["cost_usd"] = views.estimate_cost(summary["model"], summary["provider"], totals["input_tokens"],
                                                 totals["output_tokens"])
        return {"session": summary, "events": events, "complete": stop == 0, "height": end, "totals": totals}
