"""The I/O shell of a factory job: clones, worlds, the first messages, then following the audit trail.

``run_job`` does what the worlds must not do themselves: it clones the repository once per
worker and once for the judge (``git clone --shared``, so a clone costs a few files), reads
the prices of the model (fixed into the governor's configuration, so replay computes the
same costs) and the worker's session configuration (the SDK reads the environment), creates
the job's worlds and sends each its ``init``. From there the worlds work alone, by portal
messages; this side only tails their journals for ``factory/Audit@1`` events and returns
when the planner journals ``job_end``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aos.agents.factory import worlds as W
from aos.agents.factory.protocol import AUDIT, MSG, world_id
from aos.agents.factory.spec import JobSpec
from aos.errors import AosError, InvalidArgument

UNIVERSE = "factory"
EXIT = {"done": 0, "failed": 1, "stopped": 3}
SETTLE_S = 10.0  # how long a stopped job waits for its workers to confirm their abort
GRACE_S = 60  # past the wall-time budget, how long the CLI waits for the governor's stop to be journaled


class JobExists(InvalidArgument):
    """A job of that id was already run on this kernel (its worlds exist)."""

    code = "JobExists"


@dataclass
class JobOutcome:
    job: str
    status: str  # done | failed | stopped
    reason: str
    accepted: list[dict[str, Any]]
    patch_path: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT.get(self.status, 1)


def job_worlds(job: str, workers: int) -> dict[str, str]:
    """role name -> world id (``worker-1`` ...)."""
    out = {"planner": world_id(job, "planner"), "judge": world_id(job, "judge"),
           "governor": world_id(job, "governor"), "memory": world_id(job, "memory")}
    for i in range(1, workers + 1):
        out[f"worker-{i}"] = world_id(job, "worker", i)
    return out


def _git(*args: str, cwd: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise InvalidArgument(f"git {' '.join(args[:2])} failed: {done.stderr.strip()[:300]}")
    return done.stdout.strip()


def browser_ports(scenarios: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The judge's scenarios, each browser one that serves an app given a free 127.0.0.1 port (in the config, so
    journaled), and the origins its browser grant names: those ports and the urls' origins."""
    import socket
    from urllib.parse import urlsplit

    out, origins = [], []
    for s in scenarios:
        if s.get("kind") == "browser" and s["serve"]:
            with socket.socket() as sock:  # free now; the judge serves on it once per check, on this host
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            s = {**s, "port": port}
            origins.append(f"http://127.0.0.1:{port}")
        elif s.get("kind") == "browser":
            parts = urlsplit(s["url"])
            origins.append(f"{parts.scheme}://{parts.netloc}")
        out.append(s)
    return out, origins


def prepare_clones(spec: JobSpec, jobdir: str, workers: int) -> tuple[str, list[str], str]:
    """``(base commit, worker clones, judge clone)`` under ``jobdir``."""
    base = _git("rev-parse", "HEAD", cwd=spec.repository)
    os.makedirs(jobdir, exist_ok=True)
    roots = []
    for name in [f"worker-{i}" for i in range(1, workers + 1)] + ["judge"]:
        path = os.path.join(jobdir, name)
        if not os.path.isdir(os.path.join(path, ".git")):
            _git("clone", "-q", "--shared", "--no-checkout", spec.repository, path)
        _git("checkout", "-q", "--detach", base, cwd=path)
        roots.append(os.path.realpath(path))
    return base, roots[:-1], roots[-1]


def prices(provider: str, model: str) -> dict[str, list[int]]:
    """micro-USD per million tokens ``[input, output]`` for the job's model (zeros when unknown)."""
    from aos.cli_agent import _cost

    per_in = _cost(model, provider, 1_000_000, 0) or 0.0
    per_out = _cost(model, provider, 0, 1_000_000) or 0.0
    return {model: [int(round(per_in * 1_000_000)), int(round(per_out * 1_000_000))]}


def trap_of(job: str, wid: str, value: dict[str, Any]) -> dict[str, Any] | None:
    """A trap record of a factory world, shaped like an audit event (kind ``trap``), or None."""
    if value.get("kind") != "trap":
        return None
    origin = value.get("origin") or {}
    role = "worker" if ".worker-" in wid else wid.rsplit(".", 1)[-1] if "." in wid else "memory"
    return {"job": job, "role": role, "world": wid, "kind": "trap", "at_ns": 0,
            "data": {"workflow": origin.get("workflow", ""), "code": value.get("code", ""),
                     "message": str(value.get("message", ""))[:500]}}


def audit_of(value: dict[str, Any]) -> dict[str, Any] | None:
    """The audit event in a tailed record (its JSON form), or None."""
    if value.get("kind") == "domain_event" and value.get("schema") == AUDIT:
        return dict(value["value"])
    return None


class KernelPlace:
    """The job's worlds on one kernel (``Kernel.worlds``); followed by journal tails."""

    def __init__(self, admin: Any, universe: str) -> None:
        self.admin, self.universe = admin, universe
        self.tails = True

    async def open(self) -> None:
        self.worlds = await self.admin.worlds(self.universe)

    async def existing(self) -> set[str]:
        return {w["worldId"] for w in await self.worlds.list()}

    async def create(self, doc: dict[str, Any], wid: str, labels: dict[str, str] | None = None) -> Any:
        world, _info = await self.worlds.create(doc, {}, wid, doc["name"])  # one kernel: labels place nothing
        return world


class ClusterPlace:
    """The job's worlds wherever a scheduler places them (``SchedulerSession``); each handle follows its world
    through moves and failovers, and the journals are read by polling (a tail would end with its host)."""

    def __init__(self, session: Any, universe: str) -> None:
        self.session, self.universe = session, universe
        self.tails = False

    async def open(self) -> None:
        from aos.kernel.scheduler.errors import UniverseExists

        with contextlib.suppress(UniverseExists):  # an earlier job made it
            await self.session.scheduler.create_universe(self.universe, "factory jobs")
        self.u = await self.session.universe(self.universe)

    async def existing(self) -> set[str]:
        return {w["worldId"] for w in await self.u.list_worlds()}

    async def create(self, doc: dict[str, Any], wid: str, labels: dict[str, str] | None = None) -> Any:
        from aos.kernel.scheduler.client import FollowingWorld

        await self.u.create_world(doc, {}, wid, doc["name"], labels=labels or None)
        return FollowingWorld(self.session, self.universe, wid, timeout=120.0)


POLL_S = 0.2  # how often a cluster job's journals are read


async def run_job(admin: Any, spec: JobSpec, jobdir: str, on_event: Callable[[dict[str, Any]], Awaitable[None] | None],
                  *, model: str | None = None, universe: str = UNIVERSE, date: str | None = None,
                  place: Any = None) -> JobOutcome:
    """Run ``spec`` on the kernel ``admin`` is for (or on ``place``: a ``ClusterPlace``)."""
    from aos.agents.sdk import coding_agent, gather_environment, session_config

    n = min(spec.budget.parallel_workers, 16)
    ids = job_worlds(spec.job_id, n)
    worker_ids = [ids[f"worker-{i}"] for i in range(1, n + 1)]
    definition = coding_agent(spec.provider)
    model = model or spec.model or definition.profile.default_model
    place = place or KernelPlace(admin, universe)
    await place.open()
    existing = await place.existing()
    if ids["planner"] in existing:
        raise JobExists(f"job {spec.job_id!r} already ran on this kernel; give the new run another id (--id)")
    base, roots, judge_root = await asyncio.to_thread(prepare_clones, spec, jobdir, n)
    peers = sorted(set(ids.values()))
    common = {"job": spec.job_id, "provider": spec.provider, "model": model, "planner": ids["planner"],
              "judge": ids["judge"], "governor": ids["governor"], "memory": ids["memory"], "workers": worker_ids}
    job = spec.to_value()
    visible = [s for s in job["scenarios"] if not s["holdout"]]
    judged, origins = browser_ports(job["scenarios"])

    plan: list[tuple[str, dict[str, Any], dict[str, Any]]] = []  # (id, manifest, config)
    if ids["memory"] not in existing:
        plan.append((ids["memory"], W.memory_manifest(), {"world": ids["memory"], "job": ""}))
    plan.append((ids["governor"], W.governor_manifest(spec.job_id, peers),
                 {**common, "world": ids["governor"], "budget": job["budget"], "prices": prices(spec.provider, model),
                  "approval_code": secrets.token_hex(16)}))
    plan.append((ids["judge"], W.judge_manifest(spec.job_id, spec.provider, judge_root, peers, origins),
                 {**common, "world": ids["judge"], "root": judge_root, "base_commit": base, "intent": spec.intent,
                  "scenarios": judged}))
    for wid, root in zip(worker_ids, roots):
        env = gather_environment(root, definition.profile, model, date)
        cfg = session_config(definition, env, spec.provider, model)
        plan.append((wid, W.worker_manifest(spec.job_id, spec.provider, root, peers),
                     {**common, "world": wid, "root": root, "base_commit": base, "session_config": cfg}))
    plan.append((ids["planner"], W.planner_manifest(spec.job_id, spec.provider, peers),
                 {**common, "world": ids["planner"], "intent": spec.intent, "constraints": job["constraints"],
                  "scenarios": visible, "budget": job["budget"], "policy": job["policy"]}))

    events: list[dict[str, Any]] = []
    ended: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    busy: set[str] = set()
    settled = asyncio.Event()

    def follower(wid: str) -> Callable[[int, dict[str, Any]], Awaitable[None]]:
        async def on_record(seq: int, value: dict[str, Any]) -> None:
            try:
                await follow(wid, value)
            except Exception as exc:  # an exception here would end the kernel's tail silently: end the run instead
                if not ended.done():
                    ended.set_exception(exc)
        return on_record

    async def follow(wid: str, value: dict[str, Any]) -> None:
        ev = audit_of(value) or trap_of(spec.job_id, wid, value)
        if ev is None:
            return
        events.append(ev)
        if ev["role"] == "worker":
            if ev["kind"] == "task_started":
                busy.add(ev["world"])
            elif ev["kind"] in ("change", "task_failed", "aborted"):
                busy.discard(ev["world"])
            if not busy:
                settled.set()
        res = on_event(ev)
        if asyncio.iscoroutine(res):
            await res
        if ev["role"] == "planner" and ev["kind"] == "job_end" and not ended.done():
            ended.set_result(ev)
        elif ev["role"] == "planner" and ev["kind"] == "trap" and not ended.done():
            # the planner's step was discarded: its bookkeeping no longer matches the job; say so and stop
            reason = f"the planner trapped: {ev['data']['message']}"
            ended.set_result({**ev, "data": {"status": "failed", "reason": reason}})

    handles = {}
    subs = []
    polls = []

    async def poll(world: Any, on_record: Callable[[int, dict[str, Any]], Awaitable[None]]) -> None:
        seq = 0
        while True:
            records, nxt = await world.journal(seq, 256)
            for i, value in enumerate(records):
                await on_record(seq + i, value)
            if nxt == seq:
                await asyncio.sleep(POLL_S)
            seq = nxt

    try:
        for wid, doc, _ in plan:
            world = await place.create(doc, wid, job["policy"]["worker_labels"] if wid in worker_ids else None)
            handles[wid] = world
            if wid == ids["memory"]:
                continue
            if place.tails:
                subs.append(await world.tail(0, follower(wid)))
            else:
                polls.append(asyncio.ensure_future(poll(world, follower(wid))))
        for wid, _doc, cfg in plan:
            await handles[wid].send(MSG, {"kind": "init", "from": "factory", "body": {"config": cfg}})
        waiters = [ended, *polls]
        # the governor stops a job at its wall time; past that (and a grace) the job's worlds are not answering
        deadline = spec.budget.wall_time_s + GRACE_S
        await asyncio.wait(waiters, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        if not any(w.done() for w in waiters):
            ended.set_result({"data": {"status": "failed", "reason": f"no end was journaled within {deadline} s "
                                                                    "(the wall time and a grace)"}})
        for p in polls:
            if p.done() and not ended.done():
                p.result()  # a poll that failed: its error
        end = await ended
        if end["data"]["status"] == "stopped" and busy:
            settled.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(settled.wait(), SETTLE_S)
    finally:
        for p in polls:
            p.cancel()
        for sub in subs:
            with contextlib.suppress(AosError, asyncio.TimeoutError):
                await asyncio.wait_for(sub.cancel(), 2)
    state = await handles[ids["planner"]].state("factory/planner@1")
    accepted = list((state or {}).get("accepted") or [])
    patch = os.path.join(jobdir, "result.patch")
    with open(patch, "w") as f:
        f.write("".join(a["diff"] for a in accepted))
    with open(os.path.join(jobdir, "job.json"), "w") as f:
        json.dump({"job": spec.job_id, "universe": universe, "worlds": ids, "status": end["data"]["status"],
                   "reason": end["data"]["reason"], "source": spec.source, "repository": spec.repository}, f, indent=1)
    return JobOutcome(spec.job_id, str(end["data"]["status"]), str(end["data"]["reason"]),
                      [{k: a[k] for k in ("task", "attempt", "ref")} for a in accepted], patch, events)
