"""``aos world ...``: the world commands of the CLI (kept apart from the kernel ones)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from aos.errors import AosError, InvalidArgument
from aos.kernel.client import WorldsClient
from aos.kernel.host import jsonvalue
from aos.kernel.world.loader import read_bundle

GRANT_ROOT = "${AOS_GRANT_ROOT}"
# `aos world send` exits with this when the event was journaled but every workflow
# it reached trapped: not 1 (the event is in the journal; sending again repeats it)
SEND_ALL_TRAPPED = 3


def _substitute(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(GRANT_ROOT, root)
    if isinstance(value, dict):
        return {k: _substitute(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, root) for v in value]
    return value


def load_bundle_doc(directory: str, grant_root: str | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The bundle's manifest document and module bytes, with ``${AOS_GRANT_ROOT}`` filled in."""
    import os

    doc, wasm = read_bundle(directory)
    if grant_root is not None:
        if not os.path.isdir(grant_root):
            raise InvalidArgument(f"--grant-root {grant_root}: no such directory")
        doc = _substitute(doc, os.path.abspath(grant_root))
    elif GRANT_ROOT in json.dumps(doc):
        raise InvalidArgument(f"this manifest grants a host directory: pass --grant-root DIR (it uses {GRANT_ROOT})")
    return doc, wasm


async def run_world(args: argparse.Namespace, worlds: WorldsClient, conn: Any = None) -> Any:
    """Run one ``aos world`` command; ``conn`` (the connection) lets ``--tail`` notice a kernel that went away."""
    action = args.action
    if action == "create":
        doc, wasm = load_bundle_doc(args.bundle, args.grant_root)
        _, info = await worlds.create(doc, wasm, args.id, args.name)
        return {"created": info}
    if action == "ls":
        return {"worlds": await worlds.list()}
    if action == "fork":
        _, info = await worlds.fork(args.world, args.id, args.name)
        return {"forked": info}
    if action == "unquarantine":
        return {"released": await worlds.unquarantine(args.world)}
    if action == "release":
        return {"handedOver": args.world, "placement": await worlds.release(args.world)}
    if action == "acquire":
        info, placement = await worlds.acquire(args.world, args.take_over)
        return {"acquired": info, "placement": placement}
    world = await worlds.open(args.world)
    if action == "send":
        seq, outcome = await world.send_with_outcome(args.schema, jsonvalue.loads(args.value, "the event value"))
        return {"world": args.world, "seq": seq, "outcome": outcome}
    if action == "state":
        if args.workflow:
            keyed = (await world.workflows()).get(args.workflow)
            if keyed is None:
                raise InvalidArgument(f"no workflow {args.workflow!r} in world {args.world}")
            if args.key is not None:
                if not keyed:
                    raise InvalidArgument(f"{args.workflow} is not keyed (it has one state, no cells): drop --key")
                return {"state": {args.workflow: await world.state(args.workflow, jsonvalue.loads(args.key, "--key"))}}
            return {"state": {args.workflow: await _state_of(world, args.workflow, keyed)}}
        if args.key is not None:
            raise InvalidArgument("--key picks a cell of a keyed workflow: name the WORKFLOW too "
                                  "(aos world state ID WORKFLOW --key JSON)")
        return {"state": await _all_states(world)}
    if action == "snapshot":
        address, seq = await world.snapshot()
        return {"snapshot": address, "seq": seq}
    if action in ("pause", "resume"):
        seq = await (world.pause() if action == "pause" else world.resume())
        info, _ = await world.describe()
        return {"control": action, "world": args.world, "controlSeq": seq, "queued": info["queued"]}
    start = args.from_seq
    if start is None:  # the last N records, as `journal` in aos-shell shows them
        info, _ = await world.describe()
        start = max(0, int(info["journalHeight"]) - args.limit)
    if action == "journal" and args.tail:
        await _tail(args, world, start, conn)
        return None
    records, next_seq = await world.journal(start, args.limit)
    return {"records": records, "nextSeq": next_seq}


async def _all_states(world: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, keyed in (await world.workflows()).items():
        out[name] = await _state_of(world, name, keyed)
    return out


async def _state_of(world: Any, name: str, keyed: bool) -> Any:
    if not keyed:
        return await world.state(name)
    return {k if isinstance(k, str) else json.dumps(k): await world.state(name, k) for k in await world.cells(name)}


async def _tail(args: argparse.Namespace, world: Any, start: int, conn: Any) -> None:
    from aos.cli import dump_json
    from aos.cli_live import LiveView

    view = LiveView(conn)

    async def on_record(seq: int, record: dict[str, Any]) -> None:
        view.print(dump_json(record) if args.json else _line(record))

    async def on_frame(intent_hash: str, frame: Any) -> None:
        if args.json:
            view.print(dump_json({"frame": frame, "intent": intent_hash}))
        else:
            view.print(f"{'':>8}  ~ frame {intent_hash[:19]} {dump_json(frame)[:100]}")

    subscription = await world.tail(start, on_record, on_frame)
    try:
        await view.wait(f"following world {args.world}")  # or until Ctrl-C
    finally:
        del subscription


def _line(record: dict[str, Any]) -> str:
    kind = record["kind"]
    detail = {
        "event": lambda r: f"{r['schema']} {json.dumps(jsonvalue.to_jsonable(r['value']))}",
        "receipt": _receipt_detail,
        "effect_intent": lambda r: f"{r['effect']} via {r['grant']} ({r['origin']['workflow']})",
        "effect_rejected": lambda r: f"{r['effect']} refused: {r['code']}: {r['reason']}",
        "trap": lambda r: f"{_origin(r['origin'])}: {r['code']}: {r['message']}",
        "state": lambda r: ", ".join(f"{c[0]}{'' if c[1] is None else '[' + json.dumps(c[1]) + ']'}" for c in r["changes"]) or "-",
        "snapshot": lambda r: r["snapshot_hash"],
        "governance": lambda r: " ".join(str(x) for x in (r["op"], r["proposal"], r["body"].get("manifest", "")) if x),
        "domain_event": lambda r: f"{r['schema']} {json.dumps(jsonvalue.to_jsonable(r['value']))}",
        "control": lambda r: r["op"],
    }.get(kind, lambda r: "")
    return f"{record['at']:>8}  {kind:<15} {detail(record)[:160]}"


def _origin(origin: dict[str, Any]) -> str:
    key = origin.get("key")
    return origin["workflow"] + ("" if key is None else f"[{json.dumps(jsonvalue.to_jsonable(key))}]")


def _receipt_detail(record: dict[str, Any]) -> str:
    """``ok for sha256:...``; an error or timeout receipt adds its code and message."""
    detail = f"{record['status']} for {record['intent_hash'][:19]}"
    payload = record.get("payload")
    if record["status"] != "ok" and isinstance(payload, dict):
        code, message = payload.get("error") or payload.get("code"), payload.get("message")
        detail += "".join(f": {part}" for part in (code, message) if part)
    return detail


def trap_lines(outcome: dict[str, Any]) -> list[str]:
    """What ``world send`` says about the workflows an event trapped (empty when none did)."""
    lines = [f"trap in {t['workflow']}{'' if not t['key'] else '[' + t['key'] + ']'}: {t['code']}: {t['message']}"
             for t in outcome.get("traps", [])]
    if lines and all_trapped(outcome):
        lines.append(f"every workflow the event reached trapped ({outcome['steps']} step(s)): "
                     "it is journaled but changed nothing")
    return lines


def all_trapped(outcome: dict[str, Any]) -> bool:
    return outcome.get("steps", 0) > 0 and len(outcome.get("traps", [])) >= outcome["steps"]


def exit_status(result: Any) -> int:
    """0, or ``SEND_ALL_TRAPPED`` when ``world send``'s event reached only workflows that trapped."""
    outcome = result.get("outcome") if isinstance(result, dict) else None
    return SEND_ALL_TRAPPED if outcome and all_trapped(outcome) else 0


def _ago(ms: int) -> str:
    if not ms:
        return "-"
    seconds = max(0, time.time() - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def print_world(args: argparse.Namespace, result: Any) -> None:
    if "worlds" in result:
        rows = [("ID", "NAME", "STATE", "JOURNAL", "LAST EVENT")]
        for w in result["worlds"]:
            state = ("released" if w.get("released") else "quarantined" if w.get("quarantined")
                     else "awake" if w["awake"] else "hibernated") + (" paused" if w.get("paused") else "")
            rows.append((w["worldId"], w["name"], state,
                         str(w["journalHeight"]), _ago(w["lastEventMs"])))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if len(rows) == 1:
            print("(no worlds)")
    elif "released" in result:
        print(f"world {result['released']['worldId']} released from quarantine and awake")
    elif "handedOver" in result:
        print(f"world {result['handedOver']} released: {result['placement']['journalHeight']} records in shared "
              "storage; its next event or `aos world acquire` on any kernel of that storage wakes it there")
    elif "acquired" in result:
        placement = result["placement"]
        came = ("it was here already" if placement["previous"] == placement["host"]
                else f"taken over from host {placement['previous']}" if placement["previous"] else "it was released")
        print(f"world {result['acquired']['worldId']} acquired by host {placement['host']} ({came}); "
              f"{result['acquired']['journalHeight']} records, epoch {placement['epoch']}")
    elif "created" in result or "forked" in result:
        info = result.get("created") or result.get("forked")
        verb = "created" if "created" in result else "forked"
        print(f"{verb} world {info['worldId']} ({info['name']}), manifest {info['manifestHash'][:23]}...")
    elif "control" in result:
        if result["control"] == "pause":
            print(f"world {result['world']} paused (journal seq {result['controlSeq']}); inputs queue until "
                  f"`aos world resume {result['world']}` ({result['queued']} waiting)")
        else:
            print(f"world {result['world']} resumed (journal seq {result['controlSeq']}); "
                  f"{result['queued']} input(s) still being delivered")
    elif "seq" in result and "world" in result and result.get("outcome", {}).get("queued"):
        print(f"world {result['world']} is paused: the event is queued in its inbox; "
              f"`aos world resume {result['world']}` delivers it")
    elif "seq" in result and "world" in result:
        print(f"event journaled at seq {result['seq']}")
        for line in trap_lines(result.get("outcome", {})):
            print(f"aos: {line}", file=sys.stderr)
    elif "state" in result:
        for name, value in result["state"].items():
            print(f"{name}: {json.dumps(jsonvalue.to_jsonable(value), indent=2, sort_keys=True)}")
    elif "snapshot" in result:
        print(f"snapshot {result['snapshot']} (journal seq {result['seq']})")
    elif "records" in result:
        for record in result["records"]:
            print(_line(record))
        print(f"(next seq {result['nextSeq']})")
    else:
        raise AosError(f"nothing to print for {result!r}")
