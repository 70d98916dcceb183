"""What the factory's worlds say to each other, and the plumbing each of their workflows shares.

Every factory world takes one event schema, ``factory/Msg@1 {kind, from,
body}``: ``init`` (its configuration, sent once by whoever made the world)
and then the messages of its role, which other factory worlds send with
``sys/portal.send@1`` (the kernel's mailbox dedups a retried send by the
intent's idempotency key). ``from`` is the sender's world id: the kernel's
portal does not pass it on, so senders say it themselves.

Every step that matters for the audit trail is a domain event
``factory/Audit@1 {job, role, world, kind, at_ns, data}``. Nothing routes
it: it is there to be read from the journal (``aos factory explain``, the
live view of ``aos factory run``).

``Step`` is a workflow step in progress: the state, the effects and events
it emits, and the receipt bookkeeping (an effect's receipt is matched by
``(emitted_at_seq, effect_index, effect)``; see ``effect``).
"""

from __future__ import annotations

from typing import Any

MSG = "factory/Msg@1"
AUDIT = "factory/Audit@1"
RECEIPT = "sys/EffectReceipt@1"
PORTAL = "sys/portal.send@1"
LLM = "sys/llm.generate@1"
EXEC = "sys/host.exec@1"
BLOB_PUT = "sys/blob.put@1"
TIMER = "sys/timer.set@1"
CANCEL = "sys/effect.cancel@1"
BROWSER = {op: f"sys/browser.{op}@1" for op in ("navigate", "snapshot", "click", "type", "fill", "screenshot", "logs")}

ROLES = ("planner", "worker", "judge", "governor", "memory")


def world_id(job: str, role: str, n: int | None = None) -> str:
    """The world id of a role in a job (``calc.worker-2``); memory is shared by every job."""
    if role == "memory":
        return "factory-memory"
    return f"{job}.{role}" + (f"-{n}" if n is not None else "")


SCHEMAS: dict[str, Any] = {
    MSG: {"record": {"kind": "text", "from": "text", "body": "any"}},
    AUDIT: {"record": {"job": "text", "role": "text", "world": "text", "kind": "text", "at_ns": "nat",
                       "data": "any"}},
    "factory/State@1": "any",
    "factory/Any@1": "any",
    "sys/PortalSendParams@1": {"record": {"dest_world": "text", "schema": "text", "value": "any"}},
}


def effect_decl(name: str, cap: str) -> dict[str, Any]:
    params = "sys/PortalSendParams@1" if name == PORTAL else "factory/Any@1"
    return {"params": params, "receipt": "factory/Any@1", "cap": cap}


class Step:
    """One step of a factory workflow. ``st`` is the state (a dict; ``None`` before ``init``)."""

    def __init__(self, inp: dict[str, Any], role: str) -> None:
        self.st: dict[str, Any] | None = inp["state"]
        self.ctx = inp["ctx"]
        self.role = role
        self.event = inp["event"]
        self.effects: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    @property
    def now_ns(self) -> int:
        return int(self.ctx["logical_now_ns"])

    @property
    def me(self) -> str:
        assert self.st is not None
        return str(self.st["config"]["world"])

    def output(self) -> dict[str, Any]:
        return {"state": self.st, "domain_events": self.events, "effects": self.effects}

    def effect(self, effect: str, params: Any, purpose: Any = None) -> None:
        """Emit an effect; a ``purpose`` is remembered so its receipt comes back with it (``receipt``)."""
        key = f"{self.ctx['seq']}:{len(self.effects)}:{effect}"
        self.effects.append({"effect": effect, "params": params})
        if purpose is not None:
            assert self.st is not None
            self.st.setdefault("pending", {})[key] = purpose

    def receipt(self) -> tuple[Any, dict[str, Any]] | None:
        """For a receipt event: ``(purpose, receipt)`` if this step asked for it, else None (fire and forget)."""
        r = self.event["value"]
        key = f"{r['emitted_at_seq']}:{r['effect_index']}:{r['effect']}"
        if self.st is None:
            return None
        purpose = self.st.setdefault("pending", {}).pop(key, None)
        return None if purpose is None else (purpose, r)

    def send(self, dest: str, kind: str, /, **body: Any) -> None:
        self.effect(PORTAL, {"dest_world": dest, "schema": MSG, "value": {"kind": kind, "from": self.me, "body": body}})

    def audit(self, kind: str, /, **data: Any) -> None:
        assert self.st is not None
        cfg = self.st["config"]
        self.events.append({"schema": AUDIT, "value": {
            "job": str(cfg.get("job", "")), "role": self.role, "world": self.me, "kind": kind,
            "at_ns": self.now_ns, "data": data}})

    def llm(self, system: str, prompt: str, purpose: Any) -> None:
        assert self.st is not None
        cfg = self.st["config"]
        self.effect(LLM, {"provider": cfg["provider"], "model": cfg["model"], "system": system,
                          "messages": [{"role": "user", "content": prompt}], "stream": False},
                    purpose)


def usage_of(payload: Any) -> dict[str, int]:
    """Tokens of an ``llm.generate`` receipt payload (zeros when it has none)."""
    resp = payload.get("response") if isinstance(payload, dict) else None
    usage = (resp or {}).get("usage") or {}
    return {"input_tokens": int(usage.get("input_tokens") or 0), "output_tokens": int(usage.get("output_tokens") or 0)}


def text_of(payload: Any) -> str:
    resp = payload.get("response") if isinstance(payload, dict) else None
    return str((resp or {}).get("text") or "")


def exec_result(r: dict[str, Any]) -> dict[str, Any]:
    """A ``host.exec`` receipt as ``{exit_code, stdout, stderr, error}`` (a non-zero exit is an error receipt)."""
    p = r.get("payload") if isinstance(r.get("payload"), dict) else {}
    code = p.get("exit_code")
    return {"exit_code": -1 if code is None else int(code), "stdout": str(p.get("stdout") or ""),
            "stderr": str(p.get("stderr") or ""),
            "error": "" if r["status"] == "ok" else f"{p.get('error') or r['status']}: {p.get('message') or ''}"}


def tail(text: str, n: int = 1500) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def extract_json(text: str) -> Any:
    """The first JSON object in a model's answer (it may wrap it in prose or a code fence), or None."""
    import json

    start = text.find("{")
    while start != -1:
        depth = 0
        in_str = esc = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start:i + 1])
                    except ValueError:
                        break
        start = text.find("{", start + 1)
    return None
