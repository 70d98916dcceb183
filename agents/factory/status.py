"""Reading factory jobs: which worlds are a job's, their journals, and what state the job is in.

A job ``J`` is the worlds ``J.planner``, ``J.judge``, ``J.governor`` and ``J.worker-N`` in the
factory's universe (``factory-memory`` is shared by every job and belongs to none). Its state is
rebuilt from those journals alone (``explain.collect``): nothing here wakes a world or calls a model.

Two ways in, the same records out: ``read_offline`` reads a kernel's data directory (``aos factory
status|ls|explain``, beside a running kernel too), ``JournalReader`` reads over a connection (each
world's ``readRaw``, incrementally: the console's Jobs view, on a kernel or through a scheduler).
``job_report`` is what a person wants to see of one job: its state, tasks, spending against the
budget, verdicts with their evidence, the governor's stops, the workers and the audit trail.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aos.agents.factory.explain import collect, explain_lines, summary
from aos.errors import UnknownWorld
from aos.kernel.world.records import Record

PLANNER_SUFFIX = ".planner"


def job_ids(world_ids: Iterable[str]) -> list[str]:
    """The jobs among a universe's world ids (a job is known by its planner)."""
    return sorted(w[: -len(PLANNER_SUFFIX)] for w in world_ids if w.endswith(PLANNER_SUFFIX))


def job_world_ids(job: str, world_ids: Iterable[str]) -> list[str]:
    return sorted(w for w in world_ids if w.startswith(job + "."))


# --- from a data directory ------------------------------------------------------------------------------------


def offline_world_ids(data: str, universe: str) -> list[str]:
    from aos.kernel.names import key
    from aos.kernel.store import KernelStore

    path = os.path.join(data, "db")
    if not os.path.isdir(path):
        raise UnknownWorld(f"no factory data in {data}: run a job first (aos factory run JOB)")
    store = KernelStore(path, read_only=True)
    try:
        prefix = key(universe)
        return [k[len(prefix):-1].decode() for k, _ in store.scan("worlds", prefix)]
    finally:
        store.close()


def read_offline(data: str, job: str, verify: bool = True, universe: str | None = None) -> dict[str, list[Any]]:
    """The decoded journals of a job's worlds, each replayed through a fresh world first (``verify``)."""
    from aos.agents.factory.runner import UNIVERSE
    from aos.kernel.host.offline import read_world
    from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest
    from aos.kernel.world import replay as replay_journal

    universe = universe or UNIVERSE
    ids = job_world_ids(job, offline_world_ids(data, universe))
    if not ids:
        raise UnknownWorld(f"no job {job!r} in {data} (aos factory ls lists the jobs)")
    out = {}
    for wid in ids:
        offline = read_world(data, universe, wid)
        records = [decode_record(r) for r in offline.records]
        if verify:
            manifest = parse_manifest(offline.manifest)
            replay_journal(World(manifest, load_runtimes(manifest, {}), wid), records)
        out[wid] = records
    return out


def ls_row(job: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    s = summary(events)
    return {"job": job, "status": s["status"], "state": job_state(events), "reason": s["reason"],
            "tasks": len(s["tasks"]), "tokens": s["tokens"]}


# --- over a connection ------------------------------------------------------------------------------------------

RawReader = Callable[[str, int], Awaitable[tuple[list[bytes], int]]]  # (world id, from seq) -> (records, next seq)
PAGE = 4096  # the most records a host returns per readRaw


class JournalReader:
    """Journals read incrementally over a connection (``read_raw(world, seq)``: a world's ``readRaw``), each world
    from where the last call stopped, decoded as ``read_offline`` decodes them. What ``collect`` does not look
    at is not kept (a worker's journal holds its agent's whole session): audit events and traps whole, of the
    inputs between them only the last one's stamp (a trap's time); a governor's journal whole
    (``governor_spending`` reads its inputs). ``collect`` of what is kept is ``collect`` of the whole journals."""

    def __init__(self, read_raw: RawReader) -> None:
        self.read_raw = read_raw
        self.records: dict[str, list[Record]] = {}
        self.next_seq: dict[str, int] = {}

    async def journals(self, world_ids: Iterable[str]) -> dict[str, list[Record]]:
        from aos.kernel.world import decode_record

        out = {}
        for wid in world_ids:
            have = self.records.setdefault(wid, [])
            whole = wid.endswith(".governor")
            seq = self.next_seq.get(wid, 0)
            while True:
                raw, _next = await self.read_raw(wid, seq)
                for r in raw:
                    record = decode_record(r)
                    if whole:
                        have.append(record)
                    else:
                        _keep(have, record)
                seq += len(raw)
                if len(raw) < PAGE:
                    break
            self.next_seq[wid] = seq
            out[wid] = have
        return out

    def mark(self, world_ids: Iterable[str]) -> tuple[int, ...]:
        """How far each world was read: equal marks, equal journals."""
        return tuple(self.next_seq.get(w, 0) for w in world_ids)

    async def events(self, job: str, world_ids: Iterable[str]) -> list[dict[str, Any]]:
        return collect(await self.journals(job_world_ids(job, world_ids)))


def _keep(have: list[Record], record: Record) -> None:
    from aos.agents.factory.protocol import AUDIT
    from aos.kernel.world.records import DomainEventRecord, EventRecord, ReceiptRecord, TrapRecord

    if isinstance(record, (EventRecord, ReceiptRecord)):
        stamp = EventRecord("", None, record.stamp)  # only its time matters to collect
        if have and isinstance(have[-1], EventRecord) and have[-1].schema == "":
            have[-1] = stamp
        else:
            have.append(stamp)
    elif isinstance(record, TrapRecord) or (isinstance(record, DomainEventRecord) and record.schema == AUDIT):
        have.append(record)


# --- what a person wants to see of a job -----------------------------------------------------------------------

WAITING = "waiting for approval"
STOPPED_BY_BUDGET = "stopped by budget"


def job_state(events: list[dict[str, Any]]) -> str:
    """``running``, ``waiting for approval``, ``done``, ``failed``, ``stopped by budget`` or ``stopped``."""
    s = summary(events)
    if s["status"] == "stopped":
        return STOPPED_BY_BUDGET if any(e["kind"] == "budget_exceeded" for e in events) else "stopped"
    if s["status"] != "running":
        return str(s["status"])
    waiting = False
    for e in events:
        if e["role"] == "governor" and e["kind"] == "approval_requested":
            waiting = True
        elif e["role"] == "governor" and e["kind"] == "decision":
            waiting = False
    return WAITING if waiting else "running"


def _tasks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tasks: dict[str, dict[str, Any]] = {}
    for e in events:
        d, k = e["data"], e["kind"]
        if k == "plan":
            for t in d["tasks"]:
                tasks.setdefault(t["id"], {"id": t["id"], "title": t["title"], "description": t["description"],
                                           "after": list(t.get("after") or []), "state": "pending", "attempts": 0,
                                           "worker": "", "changes": [], "verdicts": []})
            continue
        t = tasks.get(str(d.get("task", ""))) if isinstance(d, dict) else None
        if t is None:
            continue
        if k == "task_dispatched":
            t.update(state="running", attempts=int(d["attempt"]), worker=str(d["worker"]))
        elif k == "replan":
            t.update(title=d["title"], description=d["description"])
        elif k == "change":
            t["changes"].append({"attempt": d["attempt"], "ref": d["ref"], "bytes": d["bytes"], "world": e["world"],
                                 "transcript": d["transcript"],
                                 "tokens": int(d["usage"]["input_tokens"]) + int(d["usage"]["output_tokens"])})
        elif k == "judging":
            t["state"] = "judging"
        elif k in ("accepted", "rejected"):
            t["state"] = k
        elif k == "task_failed":
            t["state"] = "failed"
        elif k == "aborted":
            t["state"] = "aborted"
        elif k == "judgment" and not d["final"]:
            t["verdicts"].append(_verdict(e))
    end = next((e for e in reversed(events) if e["role"] == "planner" and e["kind"] == "job_end"), None)
    for tid, final in ((end or {}).get("data", {}).get("tasks") or {}).items():
        if tid in tasks:
            tasks[tid].update(state=str(final["status"]), attempts=int(final["attempts"]))
    return list(tasks.values())


def _verdict(e: dict[str, Any]) -> dict[str, Any]:
    d = e["data"]
    return {"task": d["task"], "attempt": d["attempt"], "final": bool(d["final"]), "accepted": bool(d["accepted"]),
            "satisfaction": d["satisfaction"], "reason": d.get("reason", ""), "feedback": d.get("feedback", ""),
            "ref": d.get("ref", ""), "at_ns": e["at_ns"], "world": e["world"],
            "passed": sum(1 for x in d["evidence"] if x["passed"]), "total": len(d["evidence"]),
            "evidence": [{k: x.get(k) for k in ("name", "passed", "exit_code", "holdout", "output")}
                         for x in d["evidence"]]}


def governor_spending(job: str, journals: Mapping[str, Iterable[Record]]) -> dict[str, int] | None:
    """What the governor has counted so far (``tokens``, ``cost_microusd``, ``calls``), from the ``usage``
    messages in its journal and the prices in its ``init``: its own arithmetic, before it journals its totals."""
    from aos.agents.factory.governor import cost_microusd
    from aos.agents.factory.protocol import MSG, world_id
    from aos.kernel.world.records import EventRecord

    records = journals.get(world_id(job, "governor"))
    if records is None:
        return None
    prices: dict[str, Any] | None = None
    out = {"tokens": 0, "cost_microusd": 0, "calls": 0}
    for r in records:
        if not isinstance(r, EventRecord) or r.schema != MSG or not isinstance(r.value, Mapping):
            continue
        body = r.value.get("body") if isinstance(r.value.get("body"), Mapping) else {}
        if r.value.get("kind") == "init" and prices is None:
            prices = dict((body.get("config") or {}).get("prices") or {})
        elif r.value.get("kind") == "usage" and prices is not None:
            i, o = int(body.get("input_tokens") or 0), int(body.get("output_tokens") or 0)
            out["tokens"] += i + o
            out["calls"] += 1
            out["cost_microusd"] += cost_microusd(prices, str(body.get("model") or ""), i, o)
    return out


def job_report(job: str, events: list[dict[str, Any]], now_ns: int | None = None,
               journals: Mapping[str, Iterable[Record]] | None = None) -> dict[str, Any]:
    """A job as its journals tell it: state, tasks (each with its changes and verdicts), spending against the
    budget (the governor's totals once it journaled them; before, what it counted so far, from ``journals``),
    wall time (logical time from the planner's start to its end, or to ``now_ns``), the judge's verdicts with
    evidence, the governor's stops, approval, the workers and their transcripts, and the audit trail."""
    s = summary(events)
    first = lambda kind, role=None: next(  # noqa: E731
        (e for e in events if e["kind"] == kind and (role is None or e["role"] == role)), None)
    start, budget = first("job_start", "planner"), first("budget", "governor")
    end = next((e for e in reversed(events) if e["role"] == "planner" and e["kind"] == "job_end"), None)
    totals = next((e for e in reversed(events) if e["kind"] == "totals"), None)
    tasks = _tasks(events)
    worker_tokens = sum(c["tokens"] for t in tasks for c in t["changes"])
    counted = None if journals is None or totals is not None else governor_spending(job, journals)
    if totals is not None or s["tokens"]:
        spent = {"tokens": s["tokens"], "cost_microusd": s["cost_microusd"], "final": totals is not None}
    elif counted is not None:
        spent = {"tokens": counted["tokens"], "cost_microusd": counted["cost_microusd"], "final": False}
    else:  # no governor journal at hand: what the workers reported with their changes
        spent = {"tokens": worker_tokens, "cost_microusd": None, "final": False}
    started = start["at_ns"] if start else None
    stop_at = end["at_ns"] if end else now_ns
    wall_s = None if started is None or stop_at is None else max(0, stop_at - started) / 1e9
    workers: dict[str, dict[str, Any]] = {w: {"world": w, "tasks": [], "sessions": []}
                                          for w in ((start or {}).get("data", {}).get("workers") or [])}
    for e in events:
        if e["role"] == "worker" and e["kind"] == "task_started":
            w = workers.setdefault(e["world"], {"world": e["world"], "tasks": [], "sessions": []})
            w["tasks"].append({"task": e["data"]["task"], "attempt": e["data"]["attempt"]})
            w["sessions"].append(str(e["data"]["session"]))
    approval = {"waiting": job_state(events) == WAITING,
                "requested": [e["data"]["accepted"] for e in events
                              if e["role"] == "governor" and e["kind"] == "approval_requested"],
                "decisions": [dict(e["data"]) for e in events if e["kind"] == "decision"]}
    stops = [{"kind": e["kind"], "world": e["world"], "at_ns": e["at_ns"], **e["data"]} for e in events
             if e["kind"] in ("budget_exceeded", "aborted", "trap", "approval_refused")]
    return {
        "job": job, "state": job_state(events), "status": s["status"], "reason": s["reason"],
        "intent": (start or {}).get("data", {}).get("intent", ""),
        "budget": dict(budget["data"]) if budget else None, "spent": spent,
        "started_ns": started, "ended_ns": end["at_ns"] if end else None, "wall_s": wall_s,
        "tasks": tasks, "verdicts": [_verdict(e) for e in events if e["kind"] == "judgment"],
        "accepted": s["accepted"], "stops": stops, "approval": approval, "workers": list(workers.values()),
        "roles": {role: f"{job}.{role}" for role in ("planner", "judge", "governor")},
        "explain": explain_lines(job, events), "events": len(events),
        "trail": [{"at_ns": e["at_ns"], "role": e["role"], "world": e["world"], "kind": e["kind"]} for e in events],
    }


def job_row(job: str, events: list[dict[str, Any]], now_ns: int | None = None,
            journals: Mapping[str, Iterable[Record]] | None = None) -> dict[str, Any]:
    """A line of a job list: ``job_report`` without the trail, the tasks by id and state only."""
    r = job_report(job, events, now_ns, journals)
    return {"job": job, "state": r["state"], "reason": r["reason"], "intent": r["intent"], "budget": r["budget"],
            "spent": r["spent"], "wall_s": r["wall_s"],
            "tasks": [{"id": t["id"], "state": t["state"], "attempts": t["attempts"]} for t in r["tasks"]],
            "verdicts": {"accepted": sum(v["accepted"] for v in r["verdicts"]),
                         "rejected": sum(not v["accepted"] for v in r["verdicts"])}}
