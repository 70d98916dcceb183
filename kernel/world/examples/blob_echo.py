"""demo/blob-echo@1: store text as a blob, read it back, remember the echo.

event ``demo/EchoText@1 {text}``
  -> effect ``sys/blob.put@1 {data: utf-8 bytes of text}``
receipt of ``blob.put`` ok ``{hash, size}``
  -> effect ``sys/blob.get@1 {hash}``
receipt of ``blob.get`` ok ``{data}``
  -> state records the echoed text (``data`` decoded as UTF-8) and its hash
An error or timeout receipt counts in ``failures`` and ends that echo.

state ``demo/BlobEchoState@1 {sent, echoed, failures, last_text?, last_hash?,
last_size?}``: ``last_hash``/``last_size`` are set by the put's receipt,
``last_text`` by the get's; receipts are told apart by their ``effect``.
"""

from __future__ import annotations

from typing import Any

PUT = "sys/blob.put@1"
GET = "sys/blob.get@1"
RECEIPT = "sys/EffectReceipt@1"


def _initial() -> dict[str, Any]:
    return {"sent": 0, "echoed": 0, "failures": 0, "last_text": None, "last_hash": None, "last_size": None}


def step(inp: dict[str, Any]) -> dict[str, Any]:
    st = dict(inp["state"] or _initial())
    ev = inp["event"]
    v = ev["value"]
    if ev["schema"] != RECEIPT:
        st["sent"] += 1
        return {"state": st, "effects": [{"effect": PUT, "params": {"data": v["text"].encode("utf-8")}}]}
    if v["status"] != "ok":
        st["failures"] += 1
        return {"state": st}
    payload = v["payload"]
    if v["effect"] == PUT:
        st["last_hash"] = payload["hash"]
        st["last_size"] = payload["size"]
        return {"state": st, "effects": [{"effect": GET, "params": {"hash": payload["hash"]}}]}
    if v["effect"] == GET:
        st["echoed"] += 1
        st["last_text"] = bytes(payload["data"]).decode("utf-8", errors="replace")
        return {"state": st}
    raise ValueError(f"unexpected receipt for {v['effect']!r}")
