"""The agent session: a coding-agent loop as a deterministic keyed workflow.

How it works. One cell per session id. Commands arrive as ``agent/Command@1``
events (``start``, ``input``, ``steer``, ``abort``, ``close``, ``configure``,
and ``child_done`` from a subagent); effect receipts arrive as
``sys/EffectReceipt@1`` events to the cell that emitted them. The loop of the
spec (CAL 2.5) is unrolled across steps:

    input  -> user turn, drain steering, emit llm.generate
    llm receipt -> assistant turn; no tool calls: processing end (next follow-up)
                   tool calls: one round; every call mapped to its effect,
                   all emitted in this one step (or refused as error results)
    tool receipt -> record the result; when the round is complete: results in
                   call order into the history (truncated), drain steering,
                   loop detection, limits, emit the next llm.generate

The history is held by reference (``aos.agents.history``): each message is a
CAS blob named by its hash, the state keeps the hashes, and an
``llm.generate`` intent names them (carrying inline only what is not yet in
CAS), so neither the state nor a turn's journal records grow with the
conversation. Near the model's context window the session compacts: an
``llm.generate`` asks the model for a summary, which then replaces the old
messages (``context_compacted``; the summary names what it replaced).

Everything the session does is a domain event ``agent/Event@1 {session,
seq, kind, at_ns, data}``, so the journal alone rebuilds the transcript.
Receipts are matched to what emitted them by ``(emitted_at_seq,
effect_index)``. Time comes only from ``ctx.logical_now_ns``; no I/O here.
"""

from __future__ import annotations

import json
from typing import Any

from aos.agents import history
from aos.agents.calls import (
    ToolError,
    detect_loop,
    format_output,
    parse_arguments,
    render,
    signature,
    validate,
    workspace_path,
)
from aos.agents.truncation import limits_for, truncate_output

CANCEL_EFFECT = "sys/effect.cancel@1"
COMMAND = "agent/Command@1"
EVENT = "agent/Event@1"
RECEIPT = "sys/EffectReceipt@1"
LLM_EFFECT = "sys/llm.generate@1"
BUILTIN = "builtin:"  # ToolSpec.effect prefix of tools the session runs itself (subagents)
LOOP_WARNING = ("Loop detected: the last {window} tool calls follow a repeating pattern. "
                "Try a different approach.")
COMPACT_PROMPT = (
    "The conversation is about to outgrow your context window. Write a summary of it that lets you "
    "continue without the earlier messages: the user's task and instructions, what you have done and "
    "found (files, commands, results, decisions, errors), and what is left to do. It replaces the earlier "
    "messages; the most recent ones are kept as they are. Do not call any tool: answer with the summary only.")
AUTH_ERRORS = ("LLMAuthentication", "LLMAccessDenied")
DEFAULT_LIMITS: dict[str, Any] = {
    "max_turns": 0, "max_tool_rounds_per_input": 0, "enable_loop_detection": True,
    "loop_detection_window": 10, "loop_action": "warn", "context_window": 200_000,
    "max_subagent_depth": 1, "subagent_max_turns": 50, "parallel_tool_calls": True,
    "tool_output_limits": {}, "compact_percent": 85, "compact_keep_percent": 25,
}


def step(inp: dict[str, Any]) -> dict[str, Any]:
    """The workflow entry point (the step ABI: decoded input in, output out)."""
    s = _Step(inp)
    ev = inp["event"]
    if ev["schema"] == RECEIPT:
        s.on_receipt(ev["value"])
    else:
        s.on_command(ev["value"])
    return s.output()


class _Step:
    """One step's worth of work on one session's state."""

    def __init__(self, inp: dict[str, Any]) -> None:
        self.st: dict[str, Any] | None = inp["state"]
        self.ctx = inp["ctx"]
        self.events: list[dict[str, Any]] = []
        self.effects: list[dict[str, Any]] = []

    def output(self) -> dict[str, Any]:
        return {"state": self.st, "domain_events": self.events, "effects": self.effects}

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def limits(self) -> dict[str, Any]:
        assert self.st is not None
        return {**DEFAULT_LIMITS, **(self.st["config"].get("limits") or {})}

    def emit(self, kind: str, **data: Any) -> None:
        st = self.st
        assert st is not None
        st["seq"] += 1
        self.events.append({"schema": EVENT, "value": {
            "session": st["session"], "seq": st["seq"], "kind": kind,
            "at_ns": self.ctx["logical_now_ns"], "data": data}})

    def command(self, session: str, kind: str, **fields: Any) -> None:
        self.events.append({"schema": COMMAND, "value": {"session": session, "kind": kind, **fields}})

    def effect(self, effect: str, params: Any) -> str:
        key = f"{self.ctx['seq']}:{len(self.effects)}"
        self.effects.append({"effect": effect, "params": params})
        return key

    # --- commands -------------------------------------------------------------------------------

    def on_command(self, c: dict[str, Any]) -> None:
        kind = c["kind"]
        if kind == "start":
            return self.start(c)
        if self.st is None:
            return  # no session: nothing to steer, abort or feed (the event stays in the journal)
        if self.st["status"] == "closed":
            if kind in ("input", "steer"):
                self.emit("warning", message=f"session is closed; {kind} ignored")
            return
        if kind == "input":
            self.submit(c.get("text") or "")
        elif kind == "steer":
            self.st["steering"].append(c.get("text") or "")
        elif kind == "configure":
            self.st["options"] = {**self.st["options"], **(c.get("config") or {})}
        elif kind in ("abort", "close"):
            self.close("aborted" if kind == "abort" else "closed")
        elif kind == "child_done":
            self.child_done(c.get("child") or {})

    def start(self, c: dict[str, Any]) -> None:
        if self.st is not None:
            self.emit("warning", message="session already started")
            return
        cfg = c.get("config") or {}
        self.st = {
            "session": c["session"], "parent": c.get("parent"), "depth": c.get("depth") or 0,
            "status": "idle", "config": cfg, "options": dict(cfg.get("options") or {}),
            "history": history.new(cfg.get("system"), _llm_tools(cfg)), "sent": [], "compacting": None,
            "compact_turn": -1, "steering": [], "followups": [], "turns": 0, "rounds": 0,
            "llm": None, "round": None, "signatures": [], "children": {}, "next_child": 1,
            "seq": 0, "last_text": "", "context_warned": False,
        }
        self.emit("session_start", provider=cfg.get("provider"), model=cfg.get("model"),
                  depth=self.st["depth"], parent=self.st["parent"])
        if c.get("text"):
            self.submit(c["text"])

    def submit(self, text: str) -> None:
        st = self.st
        assert st is not None
        if st["status"] == "processing":
            st["followups"].append(text)
            return
        st["status"], st["rounds"] = "processing", 0
        history.append(st["history"], {"role": "user", "content": text})
        self.emit("user_input", text=text)
        self.drain_steering()
        self.next_call()

    def drain_steering(self) -> None:
        st = self.st
        assert st is not None
        for text in st["steering"]:
            history.append(st["history"], {"role": "user", "content": text})
            self.emit("steering_injected", text=text)
        st["steering"] = []

    def close(self, reason: str) -> None:
        st = self.st
        assert st is not None
        pending = ([st["llm"]] if st["llm"] else []) + [
            c["key"] for c in (st["round"] or {}).get("calls", []) if c["state"] == "pending"]
        for cid, child in sorted(st["children"].items()):
            if child["status"] == "running":
                self.command(cid, "close", parent=st["session"])
            child["status"] = "closed"
        st["status"], st["llm"], st["round"] = "closed", None, None
        st["steering"], st["followups"] = [], []
        # cancel what is still running (the kernel kills commands and settles the intents)
        for key in pending:
            seq, index = (int(x) for x in key.split(":"))
            self.effect(CANCEL_EFFECT, {"emitted_at_seq": seq, "effect_index": index})
        self.emit("session_end", reason=reason, pending=pending)
        self.notify_parent("failed" if reason == "aborted" else "closed", success=False)

    # --- the LLM call ---------------------------------------------------------------------------

    def next_call(self) -> None:
        st, lim = self.st, self.limits
        assert st is not None
        if lim["max_tool_rounds_per_input"] and st["rounds"] >= lim["max_tool_rounds_per_input"]:
            self.emit("turn_limit", round=st["rounds"])
            return self.finish_input("turn_limit")
        if lim["max_turns"] and st["turns"] >= lim["max_turns"]:
            self.emit("turn_limit", total_turns=st["turns"])
            return self.finish_input("turn_limit")
        h, window = st["history"], lim["context_window"]
        used = history.chars(h) // 4  # tokens, estimated as bytes / 4
        if (window and lim["compact_percent"] and used > lim["compact_percent"] * window // 100
                and st["turns"] > st["compact_turn"]):
            at = history.cut(h, lim["compact_keep_percent"] * window * 4 // 100)
            if at is not None:
                return self.compact_call(at)
        if window and used > 0.8 * window and not st["context_warned"]:
            st["context_warned"] = True
            self.emit("warning", message=f"Context usage at ~{100 * used // window}% of context window")
        st["llm"] = self.llm_call()

    def llm_call(self, extra: list[dict[str, Any]] | None = None, **options: Any) -> str:
        """Emit ``llm.generate`` on the history (then ``extra`` messages), with the unsent blobs inline."""
        st = self.st
        assert st is not None
        cfg, h = st["config"], st["history"]
        params: dict[str, Any] = {"provider": cfg["provider"], "model": cfg["model"],
                                  "context": history.context(h)}
        if h["unsent"]:
            params["blobs"] = dict(h["unsent"])
        if extra:
            params["messages"] = extra
        if st["options"] or options:
            params["options"] = {**st["options"], **options}
        st["sent"] = list(h["unsent"])
        return self.effect(LLM_EFFECT, params)

    def compact_call(self, at: int) -> None:
        """Ask the model to summarize the history; its answer replaces everything before tail index ``at``."""
        st = self.st
        assert st is not None
        st["compacting"] = {"at": at}
        # the tools stay in the request (some providers refuse tool calls in a history without them);
        # the prompt asks for text only
        st["llm"] = self.llm_call([{"role": "user", "content": COMPACT_PROMPT}])

    def compacted(self, summary: str) -> None:
        st = self.st
        assert st is not None
        h = st["history"]
        at = st["compacting"]["at"]
        before, count = history.chars(h), history.messages(h)
        ref, message = history.compact(h, at, summary)
        st["compacting"], st["compact_turn"], st["context_warned"] = None, st["turns"], False
        self.emit("context_compacted", summary=summary, replaces=message["replaces"],
                  summary_ref=ref, messages_before=count, messages_after=history.messages(h),
                  chars_before=before, chars_after=history.chars(h))
        self.next_call()

    def on_receipt(self, r: dict[str, Any]) -> None:
        st = self.st
        if st is None or st["status"] == "closed":
            return  # a late receipt after abort: recorded in the journal, ignored here
        key = f"{r['emitted_at_seq']}:{r['effect_index']}"
        if key == st["llm"]:
            st["llm"] = None
            return self.on_llm(r["status"], r["payload"])
        for call in (st["round"] or {}).get("calls", []):
            if call.get("key") == key and call["state"] == "pending":
                text, is_error = format_output(call["output_kind"], call["args"], r["status"], r["payload"])
                self.complete(call, text, is_error)
                self.launch()
                return self.maybe_end_round()

    def on_llm(self, status: str, payload: Any) -> None:
        st = self.st
        assert st is not None
        if status != "ok":
            st["compacting"] = None  # a failed summary call fails the input like any LLM error
            p = payload if isinstance(payload, dict) else {}
            code, msg = p.get("error") or status, p.get("message") or ""
            self.emit("error", code=code, message=msg)
            if code in AUTH_ERRORS:
                return self.close("error")
            if code == "LLMContextLength":
                self.emit("warning", message="context length exceeded; start a new input with less context")
            return self.finish_input("error")
        history.confirm(st["history"], st["sent"])
        st["sent"] = []
        resp = payload.get("response") or {}
        if st["compacting"] is not None:
            return self.compacted(resp.get("text") or "(the model wrote no summary)")
        st["turns"] += 1
        text = resp.get("text") or ""
        calls = resp.get("tool_calls") or []
        self.emit("assistant_text_start")
        if text:
            self.emit("assistant_text_delta", delta=text)
        self.emit("assistant_text_end", text=text, reasoning=resp.get("reasoning"), usage=resp.get("usage"),
                  finish_reason=(resp.get("finish_reason") or {}).get("reason"))
        history.append(st["history"], resp.get("message") or _assistant_message(text, calls))
        st["last_text"] = text
        if not calls:
            return self.finish_input("completed")
        st["rounds"] += 1
        self.start_round(calls)

    def finish_input(self, reason: str) -> None:
        st = self.st
        assert st is not None
        question = reason == "completed" and _asks_question(st["last_text"])
        st["status"] = "awaiting_input" if question else "idle"
        self.emit("processing_end", reason=reason, turns=st["turns"])
        self.notify_parent("completed" if reason == "completed" else "failed", success=reason == "completed")
        if st["followups"] and st["status"] != "closed":
            self.submit(st["followups"].pop(0))

    def notify_parent(self, status: str, success: bool) -> None:
        st = self.st
        assert st is not None
        if st["parent"]:
            self.command(st["parent"], "child_done", child={
                "agent_id": st["session"], "status": status, "output": st["last_text"],
                "success": success, "turns_used": st["turns"]})

    # --- a tool round ---------------------------------------------------------------------------

    def start_round(self, calls: list[dict[str, Any]]) -> None:
        st = self.st
        assert st is not None
        tools = {t["name"]: t for t in st["config"].get("tools") or []}
        st["round"] = {"calls": []}
        for raw in calls:
            call: dict[str, Any] = {"id": raw.get("id") or "", "name": raw.get("name") or "", "args": {},
                                    "state": "queued", "output_kind": "auto"}
            st["round"]["calls"].append(call)
            self.emit("tool_call_start", call_id=call["id"], tool_name=call["name"],
                      arguments=raw.get("arguments"))
            try:
                spec = tools.get(call["name"])
                if spec is None:
                    raise ToolError(f"Unknown tool: {call['name']}")
                call["args"] = parse_arguments(raw)
                st["signatures"] = (st["signatures"] + [signature(call["name"], call["args"])])[-64:]
                validate(call["args"], spec.get("parameters") or {}, call["name"])
                call["output_kind"] = spec.get("output") or "auto"
                if spec.get("writes") and st["config"].get("read_only"):
                    raise ToolError(f"Tool error ({call['name']}): the workspace is read-only")
                if spec["effect"].startswith(BUILTIN):
                    self.builtin(call, spec["effect"][len(BUILTIN):])
                else:
                    call["effect"] = spec["effect"]
                    call["params"] = render(spec.get("args") or {}, call["args"], st["config"].get("root", "/"),
                                            st["config"].get("cwd", "."))
            except ToolError as exc:
                self.complete(call, str(exc), True)
        self.launch()
        self.maybe_end_round()

    def launch(self) -> None:
        """Emit the queued effects: all of them, or one at a time without parallel tool calls."""
        st = self.st
        assert st is not None
        calls = (st["round"] or {}).get("calls", [])
        parallel = self.limits["parallel_tool_calls"]
        if not parallel and any(c["state"] == "pending" for c in calls):
            return
        for call in calls:
            if call["state"] == "queued":
                call["state"] = "pending"
                call["key"] = self.effect(call.pop("effect"), call.pop("params"))
                if not parallel:
                    return

    def complete(self, call: dict[str, Any], output: str, is_error: bool) -> None:
        """The call's result: the event carries it whole, the history gets it truncated."""
        chars, mode, lines = limits_for(call["name"], self.limits["tool_output_limits"])
        call.update(state="done", output=truncate_output(output, chars, mode, lines), is_error=is_error)
        call.pop("effect", None)
        call.pop("params", None)
        self.emit("tool_call_end", call_id=call["id"], tool_name=call["name"], output=output, is_error=is_error)

    def maybe_end_round(self) -> None:
        st, lim = self.st, self.limits
        assert st is not None
        rnd = st["round"]
        if rnd is None or any(c["state"] != "done" for c in rnd["calls"]):
            return
        for c in rnd["calls"]:
            history.append(st["history"], {"role": "tool", "tool_call_id": c["id"], "content": [
                {"kind": "tool_result", "tool_result": {"tool_call_id": c["id"], "content": c["output"],
                                                        "is_error": c["is_error"]}}]})
        st["round"] = None
        self.drain_steering()
        window = lim["loop_detection_window"]
        if lim["enable_loop_detection"] and detect_loop(st["signatures"], window):
            st["signatures"] = []
            warning = LOOP_WARNING.format(window=window)
            self.emit("loop_detection", message=warning)
            if lim["loop_action"] == "stop":
                return self.finish_input("loop_detected")
            history.append(st["history"], {"role": "user", "content": warning})
        self.next_call()

    # --- subagents ------------------------------------------------------------------------------

    def builtin(self, call: dict[str, Any], name: str) -> None:
        st = self.st
        assert st is not None
        a, children = call["args"], st["children"]
        if name == "spawn_agent":
            lim = self.limits
            if st["depth"] >= lim["max_subagent_depth"]:
                raise ToolError(f"max_subagent_depth={lim['max_subagent_depth']} reached; "
                                "recursive spawning is blocked")
            cid = f"{st['session']}/{st['next_child']}"
            st["next_child"] += 1
            cfg = dict(st["config"])
            cfg["limits"] = {**(cfg.get("limits") or {}), "max_turns": a.get("max_turns") or lim["subagent_max_turns"]}
            if a.get("model"):
                cfg["model"] = a["model"]
            if a.get("working_dir"):
                cfg["cwd"] = workspace_path(a["working_dir"], cfg.get("root", "/"), cfg.get("cwd", "."))
            self.command(cid, "start", config=cfg, parent=st["session"], depth=st["depth"] + 1, text=a["task"])
            children[cid] = {"status": "running"}
            return self.complete(call, _json({"agent_id": cid, "status": "running"}), False)
        cid = a.get("agent_id")
        child = children.get(cid)
        if child is None:
            raise ToolError(f"subagent '{cid}' not found")
        if name == "send_input":
            if child["status"] == "running":
                raise ToolError(f"subagent '{cid}' is still running; call wait before send_input")
            if child["status"] == "closed":
                raise ToolError(f"subagent '{cid}' is closed")
            self.command(cid, "input", text=a["message"])
            child["status"] = "running"
            return self.complete(call, _json({"agent_id": cid, "status": "running"}), False)
        if name == "wait":
            if child["status"] == "running":
                call.update(state="waiting", wait=cid)
                return
            return self.complete(call, _json({"agent_id": cid, **(child.get("result") or {}),
                                              "status": child["status"]}), child["status"] != "completed")
        if name == "close_agent":
            if child["status"] != "closed":
                self.command(cid, "close", parent=st["session"])
            child["status"] = "closed"
            return self.complete(call, _json({"agent_id": cid, "status": "closed"}), False)
        raise ToolError(f"Unknown builtin tool: {name}")

    def child_done(self, result: dict[str, Any]) -> None:
        st = self.st
        assert st is not None
        cid = result.get("agent_id")
        child = st["children"].get(cid)
        if child is None or child["status"] == "closed":
            return
        child.update(status=result.get("status", "completed"), result=result)
        for call in (st["round"] or {}).get("calls", []):
            if call["state"] == "waiting" and call.get("wait") == cid:
                self.complete(call, _json(result), not result.get("success"))
        self.maybe_end_round()


def _llm_tools(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": t["name"], "description": t.get("description", ""),
             "parameters": t.get("parameters") or {"type": "object", "properties": {}}}
            for t in cfg.get("tools") or []]


def _json(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _assistant_message(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"kind": "text", "text": text}] if text else []
    parts += [{"kind": "tool_call", "tool_call": c} for c in calls]
    return {"role": "assistant", "content": parts}


def _asks_question(text: str) -> bool:
    """FORGE's heuristic: ends with '?' and has at least 3 words."""
    t = text.strip()
    return t.endswith("?") and sum(1 for w in t.split() if any(ch.isalpha() for ch in w)) >= 3
