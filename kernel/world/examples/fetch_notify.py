"""demo/fetch-notify@1: fetch a URL, then tell a second workflow about it.

``fetch`` (workflow ``demo/fetcher@1``):
  event ``demo/Fetch@1 {url}`` -> effect ``sys/http.request@1 {method: "GET", url}``
  a receipt with an HTTP answer ``{status, body, ...}`` (``ok``, or ``error`` for
  a 4xx/5xx: the http adapter still sends the response in the payload) ->
  state records the status and body length (UTF-8 bytes), and emits the
  domain event ``demo/Notified@1 {url, status, body_len}``; a receipt without
  a status (connection error, timeout) counts in ``errors`` (no notification).
  Which URL a receipt answers is kept in ``pending`` (emitting seq -> url),
  since a receipt carries the intent's identity, not its params (a request
  refused at admission, e.g. a host outside the grant, stays pending).

``notify`` (workflow ``demo/notifier@1``): counts ``demo/Notified@1`` events.
"""

from __future__ import annotations

from typing import Any

HTTP = "sys/http.request@1"
RECEIPT = "sys/EffectReceipt@1"
NOTIFIED = "demo/Notified@1"


def body_len(body: Any) -> int:
    """Length in bytes of an HTTP receipt body (bytes, text or absent)."""
    if body is None:
        return 0
    if isinstance(body, str):
        return len(body.encode("utf-8"))
    return len(body)


def fetch(inp: dict[str, Any]) -> dict[str, Any]:
    st = inp["state"] or {"requested": 0, "fetched": 0, "errors": 0, "pending": {},
                          "last_url": None, "last_status": None, "last_body_len": None}
    st = {**st, "pending": dict(st["pending"])}
    ev = inp["event"]
    v = ev["value"]
    if ev["schema"] != RECEIPT:
        st["requested"] += 1
        st["pending"][str(inp["ctx"]["seq"])] = v["url"]
        return {"state": st, "effects": [{"effect": HTTP, "params": {"method": "GET", "url": v["url"]}}]}
    url = st["pending"].pop(str(v["emitted_at_seq"]), "")
    payload = v["payload"]
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):  # no HTTP answer: connection error, timeout
        st["errors"] += 1
        return {"state": st}
    n = body_len(payload.get("body"))
    st.update(fetched=st["fetched"] + 1, last_url=url, last_status=status, last_body_len=n)
    note = {"url": url, "status": status, "body_len": n}
    return {"state": st, "domain_events": [{"schema": NOTIFIED, "value": note}]}


def notify(inp: dict[str, Any]) -> dict[str, Any]:
    st = inp["state"] or {"count": 0, "last": None}
    return {"state": {"count": st["count"] + 1, "last": inp["event"]["value"]}}
