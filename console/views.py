"""What the pages show, from what the kernel answers: world filters, journal rows, agent transcripts.

No I/O: plain functions over the JSON the World interface returns (records as
``{"at", "kind", ...}``, world infos as in ``WorldInfo``), so they are tested
without a kernel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aos.kernel.host import jsonvalue

STATES = ("awake", "hibernated", "quarantined")
SORTS = {"activity": "lastEventMs", "id": "worldId", "name": "name", "journal": "journalHeight"}
AGENT_WORKFLOW = "agent/session@1"
AGENT_EVENT = "agent/Event@1"
AGENT_COMMAND = "agent/Command@1"
RECORD_PREVIEW_BYTES = 16 << 10  # a bigger record is shown clipped; the page can ask for it whole


def world_state(info: dict[str, Any]) -> str:
    return "quarantined" if info.get("quarantined") else "awake" if info.get("awake") else "hibernated"


def world_row(universe: str, info: dict[str, Any]) -> dict[str, Any]:
    return {"universe": universe, "id": info["worldId"], "name": info["name"], "state": world_state(info),
            "journal": info["journalHeight"], "lastEventMs": info["lastEventMs"],
            "quarantined": info.get("quarantined", ""), "forkedFrom": info.get("forkedFrom", ""),
            "manifestHash": info.get("manifestHash", ""), "snapshot": info.get("snapshot", ""),
            "paused": bool(info.get("paused"))}


def filter_worlds(rows: Iterable[dict[str, Any]], state: str = "", query: str = "", sort: str = "activity",
                  descending: bool = True, offset: int = 0, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
    """``(how many match, the page)``: rows in ``state`` whose id or name contains ``query``
    (case-insensitive), sorted by last activity (default, most recent first), id, name or journal height."""
    needle = query.strip().lower()
    picked = [r for r in rows if (not state or r["state"] == state)
              and (not needle or needle in r["id"].lower() or needle in r["name"].lower())]
    field = {"activity": "lastEventMs", "id": "id", "name": "name", "journal": "journal"}.get(sort, "lastEventMs")
    picked.sort(key=lambda r: (r[field], r["id"]), reverse=descending)
    return len(picked), picked[offset:offset + limit]


def _short(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonvalue.to_jsonable(value), sort_keys=True,
                                                           separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def summary(record: dict[str, Any]) -> str:
    """One line for a journal record, as the timeline shows it."""
    kind = record.get("kind")
    if kind == "event":
        return f"{record.get('schema')} {_short(record.get('value'))}"
    if kind == "domain_event":
        value = record.get("value")
        if record.get("schema") == AGENT_EVENT and isinstance(value, dict):
            return f"{AGENT_EVENT} [{value.get('session')} #{value.get('seq')}] {value.get('kind')} " \
                   f"{_short(value.get('data'), 120)}"
        return f"{record.get('schema')} {_short(value)}"
    if kind == "effect_intent":
        return f"{record.get('effect')} via {record.get('grant')} {_short(record.get('params'), 120)}"
    if kind == "receipt":
        payload = record.get("payload")
        if record.get("status") != "ok" and isinstance(payload, dict):
            return f"{record.get('status')} {payload.get('error')}: {_short(payload.get('message', ''), 120)}"
        return f"{record.get('status')} {_short(payload, 140)}"
    if kind == "effect_rejected":
        return f"{record.get('effect')} refused: {record.get('code')}: {record.get('reason')}"
    if kind == "trap":
        origin = record.get("origin") or {}
        return f"{origin.get('workflow')}: {record.get('code')}: {record.get('message')}"
    if kind == "state":
        changes = record.get("changes") or []
        return ", ".join(_short(c[0] if c[1] is None else f"{c[0]}[{json.dumps(jsonvalue.to_jsonable(c[1]))}]", 60)
                         for c in changes) or "(no change)"
    if kind == "snapshot":
        return str(record.get("snapshot_hash"))
    if kind == "control":  # an operator paused or resumed the world
        return f"world {record.get('op')}d" if record.get("op") in ("pause", "resume") else str(record.get("op"))
    return _short({k: v for k, v in record.items() if k not in ("at", "kind")})


def is_problem(record: dict[str, Any]) -> bool:
    kind = record.get("kind")
    return kind in ("trap", "effect_rejected") or (kind == "receipt" and record.get("status") != "ok")


def journal_row(record: dict[str, Any]) -> dict[str, Any]:
    """A timeline row: position, kind, one-line summary, and the record (clipped when big)."""
    body = json.dumps(jsonvalue.to_jsonable(record), sort_keys=True)
    clipped = len(body) > RECORD_PREVIEW_BYTES
    return {"at": record.get("at"), "kind": record.get("kind"), "summary": summary(record),
            "problem": is_problem(record), "bytes": len(body), "clipped": clipped,
            "record": body[:RECORD_PREVIEW_BYTES] + "…" if clipped else jsonvalue.to_jsonable(record)}


def message_direction(record: dict[str, Any]) -> str:
    """``out`` for a portal.send intent or its receipt's intent, ``in`` for an ingress event, else ``""``."""
    if record.get("kind") == "effect_intent" and str(record.get("effect", "")).startswith("sys/portal.send@"):
        return "out"
    if record.get("kind") == "event":
        return "in"
    return ""


# --- agents ----------------------------------------------------------------------------------------


def agent_event(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``agent/Event@1`` a journal record carries, as ``{at, session, seq, kind, data}``."""
    if record.get("kind") != "domain_event" or record.get("schema") != AGENT_EVENT:
        return None
    value = record.get("value") or {}
    return {"at": record.get("at"), "session": value.get("session"), "seq": value.get("seq"),
            "kind": value.get("kind"), "data": jsonvalue.to_jsonable(value.get("data") or {})}


def session_summary(session: str, state: dict[str, Any] | None) -> dict[str, Any]:
    """What the sessions list shows of one session cell (never its history)."""
    state = state or {}
    config = state.get("config") or {}
    parent, _, child = session.rpartition("/")
    return {"session": session, "status": state.get("status", "unknown"), "turns": state.get("turns", 0),
            "provider": config.get("provider", ""), "model": config.get("model", ""),
            "parent": parent if child.isdigit() else "", "depth": state.get("depth", 0)}


def usage_totals(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Tokens summed over the ``assistant_text_end`` events given."""
    tokens_in = tokens_out = calls = 0
    for event in events:
        if event["kind"] == "assistant_text_end":
            usage = event["data"].get("usage") or {}
            calls += 1
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out += int(usage.get("output_tokens") or 0)
    return {"llm_calls": calls, "input_tokens": tokens_in, "output_tokens": tokens_out}


def estimate_cost(model: str, provider: str, tokens_in: int, tokens_out: int) -> float | None:
    """USD at list prices (litellm's local price table read as JSON, then the LLM catalog); None if unknown."""
    try:
        from aos.cli_agent import _cost

        return _cost(model, provider, tokens_in, tokens_out)
    except Exception:  # noqa: BLE001 -- pricing is best effort
        return None
