"""The agent SDK: an agent definition in, a world manifest and its start event out.

``build_world(definition, repo_root, ...)`` returns ``(manifest_doc, start)``:
create the world with the manifest (``WorldsClient.create(doc, {})``), then
send ``world.send(COMMAND, start)``. Later commands are ``input_event``,
``steer_event``, ``abort_event``, ``close_event`` and ``configure_event``,
all of schema ``agent/Command@1``. ``transcript(records)`` rebuilds the
session events from a journal.

This module does the I/O the workflow must not do: it reads the project's
instruction files and the git branch, and takes the date from the caller (or
the host clock), then bakes them into the system prompt of the start event.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform as _platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aos.agents.profiles import Environment, Profile, get_profile
from aos.agents.session import CANCEL_EFFECT, COMMAND, EVENT, LLM_EFFECT
from aos.agents.spec import Limits, ToolSpec
from aos.kernel.world.records import DomainEventRecord, Record, decode_record

WORKFLOW = "agent/session@1"
MODULE = "agent/session_py@1"
SESSION_MODULE = "aos.agents.session"
STATE = "agent/SessionState@1"
SESSION_ID = "agent/SessionId@1"
ANY = "agent/Any@1"
EVENT_KINDS = [
    "session_start", "session_end", "user_input", "processing_end", "assistant_text_start",
    "assistant_text_delta", "assistant_text_end", "tool_call_start", "tool_call_output_delta", "tool_call_end",
    "steering_injected", "turn_limit", "loop_detection", "warning", "error", "context_compacted",
]
COMMAND_KINDS = ["start", "input", "steer", "abort", "close", "configure", "child_done"]
STATUSES = ["idle", "processing", "awaiting_input", "closed"]

_opt = {"option": "text"}
SCHEMAS: dict[str, Any] = {
    "agent/CancelParams@1": {"record": {"emitted_at_seq": "nat", "effect_index": "nat"}},
    ANY: "any",
    SESSION_ID: "text",
    COMMAND: {"record": {
        "session": "text", "kind": {"enum": COMMAND_KINDS}, "text": _opt, "config": {"option": "any"},
        "parent": _opt, "depth": {"option": "nat"}, "child": {"option": "any"}}},
    EVENT: {"record": {"session": "text", "seq": "nat", "kind": {"enum": EVENT_KINDS}, "at_ns": "nat",
                       "data": "any"}},
    STATE: {"record": {
        "session": "text", "parent": _opt, "depth": "nat", "status": {"enum": STATUSES},
        "config": "any", "options": "any", "history": "any", "sent": {"list": "hash"},
        "compacting": {"option": "any"}, "compact_turn": "int", "steering": {"list": "text"},
        "followups": {"list": "text"}, "turns": "nat", "rounds": "nat", "llm": _opt, "round": {"option": "any"},
        "signatures": {"list": "text"}, "children": {"map": "any"}, "next_child": "nat", "seq": "nat",
        "last_text": "text", "context_warned": "bool"}},
    "sys/HostFsReadParams@1": {"record": {
        "path": "text", "encoding": {"option": {"enum": ["utf-8", "bytes"]}}, "max_bytes": {"option": "nat"},
        "offset": {"option": "nat"}}},
    "sys/HostFsWriteParams@1": {"record": {
        "path": "text", "content": "text", "encoding": {"option": {"enum": ["utf-8", "bytes"]}},
        "overwrite": {"option": "bool"}, "append": {"option": "bool"}, "parents": {"option": "bool"}}},
    "sys/HostFsEditParams@1": {"record": {
        "path": "text", "old_string": "text", "new_string": "text", "replace_all": {"option": "bool"}}},
    "sys/HostFsApplyPatchParams@1": {"record": {"path": "text", "patch": "text"}},
    "sys/HostFsGrepParams@1": {"record": {
        "path": "text", "pattern": "text", "glob": _opt, "case_insensitive": {"option": "bool"},
        "max_results": {"option": "nat"}}},
    "sys/HostFsGlobParams@1": {"record": {"path": "text", "pattern": "text", "max_results": {"option": "nat"}}},
    "sys/HostExecParams@1": {"record": {
        "argv": {"list": "text"}, "cwd": _opt, "timeout_s": {"option": "nat"}, "timeout_ms": {"option": "nat"},
        "stdin": _opt,
        "env": {"option": {"map": "text"}}, "max_output_bytes": {"option": "nat"},
        "encoding": {"option": {"enum": ["utf-8", "bytes"]}}, "shell": {"option": "bool"}}},
}

# effect -> (params schema, cap, writes); receipts are ``any``: the adapters own their shapes
EFFECTS: dict[str, tuple[str, str, bool]] = {
    LLM_EFFECT: (ANY, "llm", False),
    "sys/host.fs.read@1": ("sys/HostFsReadParams@1", "host.fs", False),
    "sys/host.fs.write@1": ("sys/HostFsWriteParams@1", "host.fs", True),
    "sys/host.fs.edit@1": ("sys/HostFsEditParams@1", "host.fs", True),
    "sys/host.fs.apply_patch@1": ("sys/HostFsApplyPatchParams@1", "host.fs", True),
    "sys/host.fs.grep@1": ("sys/HostFsGrepParams@1", "host.fs", False),
    "sys/host.fs.glob@1": ("sys/HostFsGlobParams@1", "host.fs", False),
    "sys/host.exec@1": ("sys/HostExecParams@1", "host.exec", False),
    CANCEL_EFFECT: ("agent/CancelParams@1", "cancel", False),
}


@dataclass(frozen=True)
class AgentDefinition:
    """An agent: a profile (provider, model, default tools and prompt), and
    optionally its own ``system_prompt`` (replaces the profile's base prompt;
    the environment block and project docs are still added) and ``tools``
    (replace the profile's; ``None`` keeps them). ``read_only`` grants the
    repository read-only. ``effects`` declares extra effects custom tools use:
    name -> ``{"params", "receipt", "cap", "writes"?}`` with ``schemas``, and
    ``grants`` the grants they need (added to the manifest as given)."""

    name: str
    profile: Profile
    system_prompt: str | None = None
    tools: tuple[ToolSpec, ...] | None = None
    limits: Limits = field(default_factory=Limits)
    read_only: bool = False
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Any] = field(default_factory=dict)

    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return self.profile.tools if self.tools is None else tuple(self.tools)


def coding_agent(profile: str | Profile = "anthropic", limits: Limits | None = None) -> AgentDefinition:
    """The coding agent of a provider profile (``openai``, ``anthropic``, ``gemini``)."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    return AgentDefinition(f"coding-agent-{p.name}", p, limits=limits or Limits(context_window=p.context_window))


# --- the environment: I/O happens here, never in the workflow ---------------------------------------


def git_branch(repo_root: str | os.PathLike[str]) -> str | None:
    """The checked-out branch, read from ``.git/HEAD`` (no subprocess)."""
    try:
        head = (Path(repo_root) / ".git" / "HEAD").read_text().strip()
    except OSError:
        return None
    return head.removeprefix("ref: refs/heads/") if head.startswith("ref: ") else head[:12]


def project_docs(repo_root: str | os.PathLike[str], doc_files: Iterable[str],
                 cwd: str | os.PathLike[str] | None = None) -> tuple[tuple[str, str], ...]:
    """The instruction files from the repository root down to ``cwd``, root first."""
    root = Path(repo_root).resolve()
    here = Path(cwd).resolve() if cwd else root
    dirs = [root]
    if here != root and root in here.parents:
        rel = here.relative_to(root)
        dirs += [root.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts) + 1)]
    out = []
    for d in dirs:
        for name in doc_files:
            f = d / name
            if f.is_file():
                out.append((str(f.relative_to(root)), f.read_text(errors="replace")))
    return tuple(out)


def gather_environment(repo_root: str | os.PathLike[str], profile: Profile, model: str,
                       date: str | None = None, branch: str | None = None) -> Environment:
    """Everything the system prompt needs from the host, read now."""
    root = str(Path(repo_root).resolve())
    branch = branch or git_branch(root)
    return Environment(
        working_dir=root, platform=_platform.system().lower(), os_version=_platform.release(),
        date=date or _dt.datetime.now(_dt.UTC).date().isoformat(), model=model,
        is_git=(Path(root) / ".git").exists(), git_branch=branch,
        project_docs=project_docs(root, profile.doc_files))


# --- the world ---------------------------------------------------------------------------------------


def session_config(definition: AgentDefinition, env: Environment, provider: str | None = None,
                   model: str | None = None, options: dict[str, Any] | None = None,
                   limits: Limits | None = None) -> dict[str, Any]:
    """The ``config`` of a start command: what the session workflow runs on."""
    p = definition.profile
    prof = Profile(p.name, p.provider, p.default_model, definition.system_prompt or p.base_prompt,
                   definition.tool_specs(), p.doc_files, p.context_window, p.parallel_tool_calls)
    return {
        "provider": provider or p.provider, "model": model or env.model or p.default_model,
        "system": prof.system_prompt(env),
        "tools": [{**t.to_config(), "writes": _writes(t, definition)} for t in prof.tools],
        "limits": (limits or definition.limits).to_config(), "options": dict(options or {}),
        "root": env.working_dir, "cwd": ".", "read_only": definition.read_only,
    }


def _writes(t: ToolSpec, definition: AgentDefinition) -> bool:
    if t.effect in definition.effects:
        return bool(definition.effects[t.effect].get("writes"))
    return t.effect in EFFECTS and EFFECTS[t.effect][2]


def build_manifest(definition: AgentDefinition, repo_root: str, provider: str) -> dict[str, Any]:
    """The world manifest: the session workflow keyed by session id, the
    effects its tools use, and grants for the repository and the provider."""
    used = [LLM_EFFECT, CANCEL_EFFECT] + sorted(
        {t.effect for t in definition.tool_specs() if not t.effect.startswith("builtin:")})
    effects: dict[str, Any] = {}
    for e in used:
        if e in definition.effects:
            effects[e] = definition.effects[e]
        elif e in EFFECTS:
            params, cap, writes = EFFECTS[e]
            effects[e] = {"params": params, "receipt": ANY, "cap": cap, **({"writes": True} if writes else {})}
        else:
            raise ValueError(f"tool effect {e!r} is unknown; declare it in AgentDefinition.effects")
    caps = {d["cap"] for d in effects.values()}
    grants: dict[str, Any] = {"llm": {"cap": "llm", "params": {"providers": [provider]}},
                              "cancel": {"cap": "cancel"}}
    if "host.fs" in caps:
        grants["repo"] = {"cap": "host.fs", "params": {"root": repo_root, "read_only": definition.read_only}}
    if "host.exec" in caps:
        grants["exec"] = {"cap": "host.exec", "params": {"cwd": repo_root, "shell": True}}
    grants.update(definition.grants)
    return {
        "version": 1,
        "name": f"agent/{definition.name}",
        "schemas": {**SCHEMAS, **definition.schemas},
        "modules": {MODULE: {"runtime": "python", "python_module": SESSION_MODULE}},
        "workflows": {WORKFLOW: {"module": MODULE, "entry": "step", "state": STATE, "event": COMMAND,
                                 "key": SESSION_ID, "effects": used}},
        "effects": effects,
        "grants": grants,
        "routing": [{"event": COMMAND, "workflow": WORKFLOW, "key_field": "session"}],
    }


def build_world(definition: AgentDefinition, repo_root: str | os.PathLike[str], provider: str | None = None,
                model: str | None = None, *, session: str = "main", task: str | None = None,
                date: str | None = None, env: Environment | None = None, options: dict[str, Any] | None = None,
                limits: Limits | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(manifest_doc, start)``: send ``start`` as ``COMMAND`` to begin the
    session (with ``task`` as its first input, if given). ``env`` overrides
    what ``gather_environment`` would read from the host."""
    root = str(Path(repo_root).resolve()) if env is None else env.working_dir
    provider = provider or definition.profile.provider
    model = model or definition.profile.default_model
    env = env or gather_environment(root, definition.profile, model, date)
    config = session_config(definition, env, provider, model, options, limits)
    start: dict[str, Any] = {"session": session, "kind": "start", "config": config}
    if task:
        start["text"] = task
    return build_manifest(definition, root, provider), start


def input_event(session: str, text: str) -> dict[str, Any]:
    """A user turn (queued as a follow-up while the session is busy)."""
    return {"session": session, "kind": "input", "text": text}


def steer_event(session: str, text: str) -> dict[str, Any]:
    """A message injected before the session's next LLM call."""
    return {"session": session, "kind": "steer", "text": text}


def abort_event(session: str) -> dict[str, Any]:
    """Stop issuing effects; the session ends (``session_end`` lists the open intents to cancel)."""
    return {"session": session, "kind": "abort"}


def close_event(session: str) -> dict[str, Any]:
    return {"session": session, "kind": "close"}


def configure_event(session: str, **options: Any) -> dict[str, Any]:
    """Change LLM options (e.g. ``reasoning_effort``) from the next call on."""
    return {"session": session, "kind": "configure", "config": options}


# --- the transcript ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionEvent:
    """One ``agent/Event@1``: ``kind`` as in the spec (lower case), ``data`` its fields."""

    session: str
    seq: int
    kind: str
    at_ns: int
    data: dict[str, Any]

    def describe(self, width: int = 200) -> str:
        """One line for people (what ``aos agent run/replay`` can print)."""
        d = self.data
        if self.kind == "tool_call_start":
            detail = f"{d.get('tool_name')} {d.get('arguments')}"
        elif self.kind == "tool_call_end":
            detail = f"{d.get('tool_name')} {'ERROR ' if d.get('is_error') else ''}{d.get('output')!r}"
        elif self.kind in ("user_input", "steering_injected", "assistant_text_end"):
            detail = repr(d.get("text"))
        elif self.kind == "error":
            detail = f"{d.get('code')}: {d.get('message')}"
        else:
            detail = " ".join(f"{k}={v}" for k, v in sorted(d.items()) if k != "delta")
        line = f"[{self.session} #{self.seq}] {self.kind} {detail}".rstrip().replace("\n", "\\n")
        return line if len(line) <= width else line[:width - 1] + "…"


def transcript(records: Iterable[Record | bytes], session: str | None = None) -> list[SessionEvent]:
    """The session events in a journal (decoded records or their bytes), in
    journal order; only ``session``'s if given (subagents are ``<parent>/<n>``)."""
    out = []
    for r in records:
        rec = decode_record(r) if isinstance(r, (bytes, bytearray)) else r
        if isinstance(rec, DomainEventRecord) and rec.schema == EVENT:
            v = rec.value
            if session is None or v["session"] == session:
                out.append(SessionEvent(v["session"], v["seq"], v["kind"], v["at_ns"], dict(v["data"])))
    return out
