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
from collections.abc import Iterable
from typing import Any

from aos.agents.factory.explain import summary
from aos.errors import UnknownWorld

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
    return {"job": job, "status": s["status"], "reason": s["reason"], "tasks": len(s["tasks"]), "tokens": s["tokens"]}
