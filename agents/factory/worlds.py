"""The factory's world types: one manifest per role, each with its own workflow and the grants it needs.

| role     | workflow (trusted Python)          | grants |
|----------|------------------------------------|--------|
| planner  | ``aos.agents.factory.planner``     | ``llm`` (the job's provider), ``portal`` to the job's worlds |
| worker   | ``aos.agents.factory.worker`` + the SDK's session | the SDK's (``host.fs``/``host.exec`` on the worker's own clone, ``llm``), ``blob``, ``portal`` |
| judge    | ``aos.agents.factory.judge``       | ``host.exec`` on the judge's clone, ``llm``, ``portal``; with browser scenarios also ``browser`` (only their origins) and ``cancel`` (to stop the app it served) |
| governor | ``aos.agents.factory.governor``    | ``timer``, ``portal`` |
| memory   | ``aos.agents.factory.memory``      | ``blob``, ``portal`` (it answers whoever asks) |

No role has a grant it does not use: the planner cannot touch files, workers cannot reach
each other, the judge cannot change anything but its own clone, the governor can only talk.
``role_manifest`` builds them; a new world type adds a row here (``docs/factory.md``).
"""

from __future__ import annotations

from typing import Any

from aos.agents.factory.protocol import (
    AUDIT, BLOB_PUT, BROWSER, CANCEL, EXEC, LLM, MSG, PORTAL, SCHEMAS, TIMER, effect_decl,
)
from aos.agents.sdk import EVENT, build_manifest, coding_agent

STATE = "factory/State@1"
CAPS = {PORTAL: "portal", LLM: "llm", EXEC: "host.exec", BLOB_PUT: "blob", TIMER: "timer", CANCEL: "cancel",
        **{e: "browser" for e in BROWSER.values()}}


def _role(role: str, effects: list[str], grants: dict[str, Any], name: str) -> dict[str, Any]:
    wf = f"factory/{role}@1"
    module = f"factory/{role}_py@1"
    return {
        "version": 1,
        "name": name,
        "schemas": dict(SCHEMAS),
        "modules": {module: {"runtime": "python", "python_module": f"aos.agents.factory.{role}"}},
        "workflows": {wf: {"module": module, "entry": "step", "state": STATE, "event": MSG, "effects": effects}},
        "effects": {e: effect_decl(e, CAPS[e]) for e in effects},
        "grants": grants,
        "routing": [{"event": MSG, "workflow": wf}],
    }


def _portal(worlds: list[str] | None) -> dict[str, Any]:
    return {"cap": "portal", "params": {} if worlds is None else {"worlds": sorted(worlds)}}


def planner_manifest(job: str, provider: str, peers: list[str]) -> dict[str, Any]:
    return _role("planner", [PORTAL, LLM], {
        "llm": {"cap": "llm", "params": {"providers": [provider]}}, "portal": _portal(peers)}, f"factory/{job}/planner")


def judge_manifest(job: str, provider: str, root: str, peers: list[str],
                   origins: list[str] | None = None) -> dict[str, Any]:
    """``origins``: what the job's browser scenarios open (the ports the runner picked for the apps it serves, the
    urls' origins); none, and the judge has no browser at all."""
    grants: dict[str, Any] = {
        "llm": {"cap": "llm", "params": {"providers": [provider]}},
        "exec": {"cap": "host.exec", "params": {"cwd": root, "shell": True}},
        "portal": _portal(peers)}
    effects = [PORTAL, LLM, EXEC]
    if origins:
        effects += [*BROWSER.values(), CANCEL]
        grants["browser"] = {"cap": "browser", "params": {"origins": sorted(set(origins))}}
        grants["cancel"] = {"cap": "cancel"}
    return _role("judge", effects, grants, f"factory/{job}/judge")


def governor_manifest(job: str, peers: list[str]) -> dict[str, Any]:
    return _role("governor", [PORTAL, TIMER], {"timer": {"cap": "timer"}, "portal": _portal(peers)},
                 f"factory/{job}/governor")


def memory_manifest() -> dict[str, Any]:
    return _role("memory", [PORTAL, BLOB_PUT], {"blob": {"cap": "blob"}, "portal": _portal(None)}, "factory/memory")


def worker_manifest(job: str, provider: str, root: str, peers: list[str]) -> dict[str, Any]:
    """The SDK's coding-agent world on ``root`` plus the worker's own workflows."""
    doc = build_manifest(coding_agent(provider), root, provider)
    module = "factory/worker_py@1"
    effects = [PORTAL, EXEC, BLOB_PUT]
    doc["name"] = f"factory/{job}/worker"
    doc["schemas"].update(SCHEMAS)
    doc["modules"][module] = {"runtime": "python", "python_module": "aos.agents.factory.worker"}
    doc["workflows"]["factory/worker@1"] = {"module": module, "entry": "step", "state": STATE, "event": MSG,
                                            "effects": effects}
    doc["workflows"]["factory/watch@1"] = {"module": module, "entry": "watch", "state": STATE, "event": EVENT}
    for e in (PORTAL, BLOB_PUT):
        doc["effects"][e] = effect_decl(e, CAPS[e])
    doc["grants"]["portal"] = _portal(peers)
    doc["grants"]["blob"] = {"cap": "blob"}
    doc["routing"] += [{"event": MSG, "workflow": "factory/worker@1"},
                       {"event": EVENT, "workflow": "factory/watch@1"}]
    return doc


__all__ = ["AUDIT", "governor_manifest", "judge_manifest", "memory_manifest", "planner_manifest", "worker_manifest"]
