"""The console's Jobs view: the software factory's jobs (``aos.agents.factory``) the token can see.

A job is found by its planner world (``J.planner`` named ``factory/J/planner``) in any universe the
token lists; its state is rebuilt from its worlds' journals by ``aos.agents.factory.status`` (what
``aos factory status|ls|explain`` read), over the console's connection: each world's ``readRaw``,
read incrementally, on a kernel or through a scheduler's introductions (a job whose worlds are on
several hosts reads the same). Nothing here wakes a world or calls a model.

Routes: ``/api/jobs`` (every job, one row each), ``/api/job/U/J`` (one job's report and its worlds),
``/api/job/U/J/live`` (server-sent events: the report again each time its journals grow), and two
interventions through the console's one audited write path: ``POST /api/world/U/J.governor/factory/
decide`` (approve or reject a job waiting for a person: the governor's approval code is read from its
state and never leaves the console) and ``POST /api/world/U/J.planner/factory/stop``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from aos.agents.factory.explain import collect
from aos.agents.factory.protocol import MSG
from aos.agents.factory.status import JournalReader, job_ids, job_report, job_row, job_world_ids
from aos.errors import AosError, InvalidArgument, UnknownWorld

if TYPE_CHECKING:
    from aos.console.server import Console

LIVE_POLL = 0.5  # seconds between two reads of a live job's journals (readRaw from where the last stopped)
GOVERNOR = "factory/governor@1"


class Jobs:
    """Finds jobs in the backend's universes and reads them, one ``JournalReader`` for the console."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.readers: dict[str, JournalReader] = {}
        self.reports: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}

    @property
    def backend(self) -> Any:
        return self.console.backend

    def reader(self, universe: str) -> JournalReader:
        found = self.readers.get(universe)
        if found is None:
            async def read_raw(wid: str, seq: int) -> tuple[list[bytes], int]:
                world = await self.backend.world_cap(universe, wid)
                return await world.read_raw(seq, 0)  # type: ignore[no-any-return]

            found = self.readers[universe] = JournalReader(read_raw)
        return found

    async def universes(self) -> list[str]:
        info = self.backend.info
        assert info is not None
        if info.kind == "world":
            return [info.universe]
        return [u["name"] for u in await self.backend.universes() if u["worlds"]]

    async def list(self) -> list[dict[str, Any]]:
        now = time.time_ns()
        out = []
        for universe in await self.universes():
            rows = await self.backend.world_rows(universe)
            ids = [r["id"] for r in rows]
            names = {r["id"]: r["name"] for r in rows}
            for job in job_ids(ids):
                if names.get(f"{job}.planner") != f"factory/{job}/planner":
                    continue  # a world that only looks like a planner
                journals = await self.reader(universe).journals(job_world_ids(job, ids))
                out.append({"universe": universe, **job_row(job, collect(journals), now, journals)})
        return out

    async def report(self, universe: str, job: str, fresh: bool = True) -> dict[str, Any]:
        if fresh:
            self.backend.invalidate(universe)
        rows = await self.backend.world_rows(universe)
        mine = {r["id"]: r for r in rows if r["id"] in job_world_ids(job, [x["id"] for x in rows])}
        if f"{job}.planner" not in mine:
            raise UnknownWorld(f"no factory job {job!r} in universe {universe!r}")
        reader = self.reader(universe)
        journals = await reader.journals(list(mine))
        mark = (tuple(mine), reader.mark(mine))
        cached = self.reports.get((universe, job))
        if not fresh and cached is not None and cached[0] == mark:
            return cached[1]  # nothing new in its journals: the same report (a live page asks every 0.5 s)
        report = job_report(job, collect(journals), time.time_ns(), journals)
        report["universe"] = universe
        report["worlds"] = [{k: r.get(k) for k in ("id", "name", "state", "host", "journal")}
                            for _, r in sorted(mine.items())]
        self.reports[(universe, job)] = (mark, report)
        return report


def _json(value: Any) -> web.Response:
    return web.json_response(value, dumps=lambda v: json.dumps(v, sort_keys=True))


def register(console: Console, router: web.UrlDispatcher) -> None:
    jobs = Jobs(console)

    async def list_jobs(request: web.Request) -> web.Response:
        return _json({"jobs": await console.backend.call(jobs.list)})

    async def one(request: web.Request) -> web.Response:
        u, j = request.match_info["universe"], request.match_info["job"]
        return _json(await console.backend.call(lambda: jobs.report(u, j)))

    async def live(request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``job`` (the whole report) now and each time the job's journals grew."""
        u, j = request.match_info["universe"], request.match_info["job"]
        backend = console.backend
        first = await backend.call(lambda: jobs.report(u, j))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        seen, quiet = -1, 0.0
        report: dict[str, Any] | None = first
        try:
            await response.write(b": job open\n\n")
            while True:
                if report is not None and report["events"] != seen:
                    seen = report["events"]
                    await response.write(f"event: job\ndata: {json.dumps(report, sort_keys=True)}\n\n".encode())
                    quiet = 0.0
                quiet += LIVE_POLL
                if quiet >= 15:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
                await asyncio.sleep(LIVE_POLL)
                if request.transport is None or request.transport.is_closing():
                    break  # the page went away (nothing is written to notice it between changes)
                try:
                    report = await backend.call(lambda: jobs.report(u, j, fresh=False))
                except AosError:
                    await response.write(b"event: lost\ndata: {}\n\n")
                    report = None
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def decide(request: web.Request) -> web.Response:
        u, w = request.match_info["universe"], request.match_info["world"]
        if not w.endswith(".governor"):
            raise InvalidArgument(f"{w} is not a factory job's governor world")
        body = await console._body(request)
        decision = str(body.get("decision", ""))
        if decision not in ("approve", "reject"):
            raise InvalidArgument("decision must be approve or reject")
        note = str(body.get("note", ""))[:1000]
        job = w[: -len(".governor")]
        session = request["session"]
        by = f"console {session.label}"

        async def work() -> Any:
            gov = await console.backend.world_cap(u, w)
            state = await gov.state(GOVERNOR)
            if not state or not state.get("approval"):
                raise InvalidArgument(f"job {job} is not waiting for approval")
            # the code is the governor's own: it proves the decision came through a holder of this world
            await gov.send(MSG, {"kind": decision, "from": "person", "body": {
                "code": state["config"]["approval_code"], "by": by, "note": note}})
            return {"job": job, "decision": decision, "by": by, "accepted": list(state["approval"]["accepted"])}

        return await console._act(request, f"factory_{decision}", "send", {"job": job, "note": note}, work)

    async def stop(request: web.Request) -> web.Response:
        u, w = request.match_info["universe"], request.match_info["world"]
        if not w.endswith(".planner"):
            raise InvalidArgument(f"{w} is not a factory job's planner world")
        body = await console._body(request)
        session = request["session"]
        reason = str(body.get("reason") or "").strip()[:500] or "stopped from the console"
        reason = f"{reason} (console {session.label})"
        job = w[: -len(".planner")]

        async def work() -> Any:
            planner = await console.backend.world_cap(u, w)
            seq = await planner.send(MSG, {"kind": "stop", "from": "console", "body": {"reason": reason}})
            return {"job": job, "seq": seq}

        return await console._act(request, "factory_stop", "send", {"job": job, "reason": reason}, work)

    router.add_get("/api/jobs", list_jobs)
    router.add_get("/api/job/{universe}/{job}", one)
    router.add_get("/api/job/{universe}/{job}/live", live)
    router.add_post("/api/world/{universe}/{world}/factory/decide", decide)
    router.add_post("/api/world/{universe}/{world}/factory/stop", stop)
