"""``aos world propose|shadow|approve|reject|apply|rollback|history|manifest``: governance from the CLI.

    aos world propose ID PATCH [--reason TEXT]     PATCH: a JSON file, - (stdin) or the JSON itself
    aos world shadow ID PROPOSAL [--events FILE] [--sample N]
    aos world approve ID PROPOSAL [--reason TEXT]  aos world reject ID PROPOSAL [--reason TEXT]
    aos world apply ID PROPOSAL                    aos world rollback ID [MANIFEST] [--reason TEXT]
    aos world history ID                           aos world manifest ID

A manifest changes only through these steps (docs/demiurge.md): propose a
patch, shadow it on a fork of the world against recent events (or given
ones), approve it (only after a shadow run that found no problem), apply it;
roll back to an earlier manifest. Each step is journaled. ``shadow`` exits 3
when the run found problems (nothing changed; fix the patch), like ``world
send`` when every workflow trapped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from aos.errors import InvalidArgument
from aos.kernel.host import jsonvalue

ACTIONS = ("propose", "shadow", "approve", "reject", "apply", "rollback", "history", "manifest")
SHADOW_FOUND_PROBLEMS = 3


def add_parsers(sub: Any, world: Any) -> None:
    """The governance actions under ``aos world``, and ``aos demiurge``."""
    propose = world.add_parser("propose", help="propose a manifest change (a patch); next: shadow it",
                               description="Propose a patch to the world's manifest: JSON {\"ops\": [{\"op\": "
                               "add|replace|remove, \"section\": schemas|modules|workflows|effects|grants|routing|"
                               "secrets, \"name\", \"value\"}]}. The patched manifest is checked as a create checks "
                               "one. Prints the proposal id and what changes.")
    propose.add_argument("world")
    propose.add_argument("patch", help="a JSON file, - for stdin, or the JSON itself")
    propose.add_argument("--reason", default="")
    shadow = world.add_parser("shadow", help="run a proposal on a fork against recent events (exit 3: problems)",
                              description="Run the proposal on a fork of the world's state against its last "
                              "--sample events (default 20) or the events in --events FILE ([{\"schema\", "
                              "\"value\"}]), beside an unpatched fork. Reports state changes, effects it would emit, "
                              "grants added or dropped, and problems. Exit status 3 when it found problems.")
    shadow.add_argument("world")
    shadow.add_argument("proposal")
    shadow.add_argument("--events", default=None, metavar="FILE")
    shadow.add_argument("--sample", type=int, default=0, metavar="N")
    for name, text in (("approve", "approve a proposal whose shadow run found no problem"),
                       ("reject", "reject a proposal")):
        cmd = world.add_parser(name, help=text)
        cmd.add_argument("world")
        cmd.add_argument("proposal")
        cmd.add_argument("--reason", default="")
    apply = world.add_parser("apply", help="switch the world to an approved proposal's manifest")
    apply.add_argument("world")
    apply.add_argument("proposal")
    rollback = world.add_parser("rollback", help="switch back to an earlier manifest (default: the one before)")
    rollback.add_argument("world")
    rollback.add_argument("manifest", nargs="?", default="", help="a manifest hash from `aos world history`")
    rollback.add_argument("--reason", default="")
    history = world.add_parser("history", help="the world's proposals and manifest changes")
    history.add_argument("world")
    manifest = world.add_parser("manifest", help="the manifest the world runs now (JSON)")
    manifest.add_argument("world")
    from aos.cli_demiurge import add_parser as add_demiurge_parser

    add_demiurge_parser(sub)


def _patch(text: str) -> Any:
    if text == "-":
        return jsonvalue.loads(sys.stdin.read(), "the patch")
    if text.lstrip().startswith("{"):
        return jsonvalue.loads(text, "the patch")
    try:
        with open(os.path.expanduser(text)) as f:
            return jsonvalue.loads(f.read(), f"the patch in {text}")
    except OSError as exc:
        raise InvalidArgument(f"cannot read the patch {text}: {exc.strerror or exc}") from None


def _events(path: str | None) -> list[tuple[str, Any]] | None:
    if path is None:
        return None
    try:
        with open(os.path.expanduser(path)) as f:
            value = jsonvalue.loads(f.read(), f"the events in {path}")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(value, list) or not all(isinstance(e, dict) and isinstance(e.get("schema"), str) for e in value):
        raise InvalidArgument(f"{path}: a JSON list of {{\"schema\": ..., \"value\": ...}}")
    return [(e["schema"], e.get("value")) for e in value]


async def run_governance(args: argparse.Namespace, world: Any) -> dict[str, Any]:
    """One governance action on ``world`` (a ``WorldClient``); the result to print."""
    a = args.action
    if a == "propose":
        return {"proposed": await world.propose(_patch(args.patch), args.reason)}
    if a == "shadow":
        return {"shadow": await world.shadow(args.proposal, _events(args.events), args.sample)}
    if a in ("approve", "reject"):
        method = world.approve if a == "approve" else world.reject
        return {"decided": await method(args.proposal, args.reason)}
    if a == "apply":
        return {"switched": await world.apply(args.proposal)}
    if a == "rollback":
        return {"switched": await world.rollback(args.manifest, args.reason)}
    if a == "history":
        return {"history": await world.governance()}
    return {"manifest": await world.manifest()}


def print_governance(args: argparse.Namespace, result: dict[str, Any]) -> None:
    for line in governance_lines(args.world, result):
        print(line)


def governance_lines(world: str, result: dict[str, Any]) -> list[str]:
    """What a governance result says, for people (the CLI prints it, aos-shell shows it)."""
    out: list[str] = []
    add = out.append
    if "proposed" in result:
        p = result["proposed"]
        add(f"proposal {p['proposal']} for world {world}: manifest {p['manifest']}")
        for line in p["diff"]["lines"]:
            add(f"  {line}")
        out += _grants(p["grants"])
        add(f"next: aos world shadow {world} {p['proposal']}")
    elif "shadow" in result:
        r = result["shadow"]
        verdict = "no problems" if r["ok"] else f"{len(r['problems'])} problem(s)"
        add(f"shadow run of {r['proposal']} on {r['events']} event(s): {verdict}")
        for p in r["problems"]:
            where = f" in {p['workflow']}" if p.get("workflow") else ""
            add(f"  problem: {p['kind']}{where}: {p.get('code', '')} {p.get('message', '')}".rstrip())
        for s in r["state_changes"]:
            key = "" if s["key"] is None else f"[{json.dumps(jsonvalue.to_jsonable(s['key']))}]"
            add(f"  state {s['workflow']}{key}: {_short(s['before'])} -> {_short(s['after'])}")
        for e in r["effects"]:
            add(f"  {'new ' if e['new'] else ''}effect {e['effect']} from {e['workflow']} via {e['grant']}")
        for d in r["dropped_cells"]:
            add(f"  drops the cell {d['workflow']}{'' if d['key'] is None else '[' + json.dumps(d['key']) + ']'}")
        out += _grants(r["grants"])
        if r["ok"]:
            add(f"next: aos world approve {world} {r['proposal']}")
    elif "decided" in result:
        d = result["decided"]
        add(f"proposal {d['proposal']} {d['status']}")
    elif "switched" in result:
        s = result["switched"]
        what = f"proposal {s['proposal']} applied" if s["op"] == "apply" else "rolled back"
        add(f"{what}: world {world} runs manifest {s['manifest']} (was {s['before']}), journal seq {s['seq']}")
    elif "history" in result:
        h = result["history"]
        add(f"world {h['world']} runs manifest {h['manifest']}")
        for p in h["proposals"]:
            shadow = p.get("shadow") or {}
            verdict = "ok" if shadow.get("ok") else f"{shadow.get('problems')} problem(s)"
            ran = f", shadow {verdict}" if shadow else ""
            add(f"  {p['id']:<5} {p['status']:<9} {'; '.join(p['summary'][:3])}{ran}  ({p['reason'] or 'no reason'})")
        for c in h["history"]:
            add(f"  {c['op']:<8} {c['proposal'] or '-':<5} {c['before'][:19]}... -> {c['after'][:19]}... "
                  f"at input {c['seq']} by {c['by']}")
        if not h["proposals"] and not h["history"]:
            add("  (no proposals yet)")
    else:
        add(json.dumps(jsonvalue.to_jsonable(result["manifest"]["manifest"]), indent=2, sort_keys=True))
    return out


def _grants(grants: dict[str, Any]) -> list[str]:
    return ([f"  grant added: {g['name']} ({g['cap']}) {json.dumps(g['params'], sort_keys=True)}"
             for g in grants.get("added", ())]
            + [f"  grant dropped: {g['name']} ({g['cap']})" for g in grants.get("dropped", ())]
            + [f"  grant changed: {g['after']['name']} ({g['after']['cap']}) {json.dumps(g['after']['params'])}"
               for g in grants.get("changed", ())])


def _short(value: Any) -> str:
    text = json.dumps(jsonvalue.to_jsonable(value), sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"


def exit_status(result: dict[str, Any]) -> int:
    shadow = result.get("shadow")
    return SHADOW_FOUND_PROBLEMS if shadow is not None and not shadow.get("ok") else 0


def main(args: argparse.Namespace) -> int:
    """The exit status of a governance action; errors propagate to ``aos.cli`` (one line there)."""
    from aos import cli_connect
    from aos.cli import dump_json
    from aos.cli_live import silence_stdout
    from aos.kernel.client import run

    async def go() -> dict[str, Any]:
        conn, held = await cli_connect.connect(args)
        with contextlib.closing(conn):
            if held.info.kind in ("scheduler", "universe"):  # a cluster: the world through its introduction
                from aos.cli_cluster import open_scheduled_world, scheduler_session

                async with scheduler_session(args, conn) as session:
                    return await run_governance(args, await open_scheduled_world(args, session))
            world = await (await held.worlds(args)).open(args.world)
            return await run_governance(args, world)

    result = run(go())
    try:
        if args.json:
            print(dump_json(result, pretty=True))
        else:
            print_governance(args, result)
    except BrokenPipeError:
        silence_stdout()
    return exit_status(result)
