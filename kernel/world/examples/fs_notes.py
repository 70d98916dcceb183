"""demo/fs-notes@1: notes as files in a host directory granted to the world.

event ``demo/NoteOp@1``:
  ``{op: "add", name, text}`` -> effect ``sys/host.fs.write@1
  {path: "notes/<name>.txt", content: text, parents: true}``; the name joins
  ``notes`` when the write's ok receipt arrives (``pending`` maps the emitting
  seq to the name, since a receipt does not carry the intent's params);
  ``{op: "list"}`` -> effect ``sys/host.fs.list@1 {path: "notes"}``; its ok
  receipt replaces ``last_listing`` with the entry names.
A name must match ``[A-Za-z0-9_-][A-Za-z0-9._-]*`` (no ``/``, no leading dot,
at most 100 characters); a bad name or a missing field is refused in state
(``last_error``) without an effect. Error and timeout receipts count in
``errors`` with their error code. A write the kernel refuses at admission
(e.g. under a read-only grant) never gets a receipt, so its ``pending`` entry
stays: a workflow cannot see admission.
"""

from __future__ import annotations

import re
from typing import Any

WRITE = "sys/host.fs.write@1"
LIST = "sys/host.fs.list@1"
RECEIPT = "sys/EffectReceipt@1"
DIR = "notes"
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def _initial() -> dict[str, Any]:
    return {"notes": [], "pending": {}, "last_listing": None, "writes": 0, "lists": 0, "errors": 0,
            "last_error": None}


def _error_code(v: dict[str, Any]) -> str:
    p = v.get("payload")
    code = p.get("error") if isinstance(p, dict) else None
    return f"{v['effect']}: {code if isinstance(code, str) else v['status']}"


def step(inp: dict[str, Any]) -> dict[str, Any]:
    st = dict(inp["state"] or _initial())
    st["pending"] = dict(st["pending"])
    ev = inp["event"]
    v = ev["value"]
    if ev["schema"] == RECEIPT:
        name = st["pending"].pop(str(v["emitted_at_seq"]), None) if v["effect"] == WRITE else None
        if v["status"] != "ok":
            st["errors"] += 1
            st["last_error"] = _error_code(v)
        elif v["effect"] == WRITE:
            st["writes"] += 1
            if name is not None and name not in st["notes"]:
                st["notes"] = sorted([*st["notes"], name])
        else:
            st["lists"] += 1
            st["last_listing"] = [e["name"] for e in v["payload"]["entries"]]
        return {"state": st}
    if v["op"] == "list":
        return {"state": st, "effects": [{"effect": LIST, "params": {"path": DIR}}]}
    name, text = v.get("name"), v.get("text")
    if not isinstance(name, str) or not NAME.fullmatch(name) or not isinstance(text, str):
        st["last_error"] = f"add refused: bad name {name!r}" if text is not None else "add refused: no text"
        return {"state": st}
    st["pending"][str(inp["ctx"]["seq"])] = name
    params = {"path": f"{DIR}/{name}.txt", "content": text, "parents": True}
    return {"state": st, "effects": [{"effect": WRITE, "params": params}]}
