"""The Demiurge: AOS's own agent, which knows, changes and extends the world it is given.

It is an agent session (``aos.agents.session``) like any other, in a world of
its own, with its own tools and system prompt. Every tool is a kernel effect
under a grant of the Demiurge's world, so what it may do is exactly what its
grants say:

- always ``inspect`` on its target world (with ``universe``: on every world
  of the universe): overview, manifest, manifest history, cells, state,
  journal search, effects in flight, grants, stats;
- ``governance`` on the target: propose, shadow, approve, reject, apply and
  roll back patches (a patch through it may touch grants of the kinds in
  ``GOVERNANCE_GRANT_KINDS`` only);
- ``workspace`` (one workspace, ``workspace_name(target)``) and ``compile``:
  write module sources, diff, commit and compile them to WASM;
- ``universe``: create worlds (whose grants are timer, blob or cancel) and
  send them events.

The tools are always there; without the grant behind one the kernel refuses
its effect at admission and the session reads the refusal as the tool's
error result, so the Demiurge says it cannot. ``build_demiurge`` returns the
manifest and the start command, as ``aos.agents.build_world`` does.
"""

from __future__ import annotations

import datetime as _dt
import platform as _platform
from collections.abc import Iterable
from typing import Any

from aos.agents.profiles import Environment, get_profile
from aos.agents.sdk import ANY, AgentDefinition, build_manifest, session_config
from aos.agents.spec import Limits, ToolSpec

GRANT_KINDS = ("governance", "workspace", "compile", "universe")
GOVERNANCE_OPS = ["propose", "shadow", "approve", "reject", "apply", "rollback", "history"]
# the grant kinds a patch made by the Demiurge may add, change or drop (never governance or universe)
GOVERNANCE_GRANT_KINDS = ["timer", "blob", "cancel"]
DEFAULT_LIMITS = Limits(max_turns=60, max_tool_rounds_per_input=60)

_WORLD = {"type": "string", "description": "the world (default: the world you serve)"}


def workspace_name(target: str) -> str:
    """The workspace holding the module sources of ``target``'s Demiurge."""
    return f"{target}.src"


def _inspect(tool: str, what: str, description: str, **props: Any) -> ToolSpec:
    required = [k for k, v in props.items() if v.pop("required", False)]
    args: dict[str, Any] = {"world": {"$arg": "world"}, "what": {"$const": what}}
    args.update({k: {"$arg": k} for k in props})
    return ToolSpec(tool, description, {"type": "object", "properties": {"world": _WORLD, **props},
                                        "required": required, "additionalProperties": False},
                    "sys/world.inspect@1", args)


def _governance(tool: str, op: str, description: str, **props: Any) -> ToolSpec:
    required = [k for k, v in props.items() if v.pop("required", False)]
    args: dict[str, Any] = {"world": {"$arg": "world"}, **{k: {"$arg": k} for k in props}}
    return ToolSpec(tool, description, {"type": "object", "properties": {"world": _WORLD, **props},
                                        "required": required, "additionalProperties": False},
                    f"sys/governance.{op}@1", args)


def _tool(tool: str, effect: str, description: str, consts: dict[str, Any] | None = None, **props: Any) -> ToolSpec:
    required = [k for k, v in props.items() if v.pop("required", False)]
    args: dict[str, Any] = {k: {"$const": v} for k, v in (consts or {}).items()}
    args.update({k: {"$arg": k} for k in props})
    return ToolSpec(tool, description, {"type": "object", "properties": props, "required": required,
                                        "additionalProperties": False}, effect, args)


def _s(description: str, required: bool = False, kind: str = "string") -> dict[str, Any]:
    d: dict[str, Any] = {"type": kind, "description": description}
    if required:
        d["required"] = True
    return d


def tools(target: str) -> tuple[ToolSpec, ...]:
    """The Demiurge's tools for a target world (the default of every ``world`` argument)."""
    ws = workspace_name(target)
    specs = [
        _inspect("world_overview", "overview", "What the world is: workflows (keyed?, cells), modules, schemas, "
                 "effects, routing, grants, governance counts, effects in flight, recent traps."),
        _inspect("read_manifest", "manifest", "The manifest the world runs now (JSON), its hash and CAS address; "
                 "narrow it with section (schemas, modules, workflows, effects, grants, routing) and name.",
                 section=_s("a manifest section"), name=_s("one definition of that section")),
        _inspect("manifest_history", "history", "The world's proposals (status, shadow results) and its manifest "
                 "changes (apply, rollback), oldest first."),
        _inspect("list_cells", "cells", "The cell keys of a keyed workflow.",
                 workflow=_s("the workflow", True)),
        _inspect("read_state", "state", "The state of a workflow (key: the cell key, for keyed workflows).",
                 workflow=_s("the workflow", True), key=_s("the cell key (keyed workflows)")),
        _inspect("search_journal", "journal", "Journal records: the last `limit`, or from `from`; or a search: "
                 "records whose JSON matches `pattern` (RE2, case-insensitive) and/or whose kind is in `kinds` "
                 "(event, receipt, governance, domain_event, effect_intent, effect_rejected, trap, state, snapshot).",
                 pattern=_s("RE2 pattern"), kinds={"type": "array", "items": {"type": "string"}},
                 limit=_s("at most this many records (default 20, max 100)", kind="integer"),
                 **{"from": _s("the first journal position of a page", kind="integer")}),
        _inspect("effects_in_flight", "intents", "Effects admitted and not yet settled."),
        _inspect("list_grants", "grants", "The world's grants: name, kind, parameters, active."),
        _inspect("world_stats", "stats", "Journal height, inputs, traps, refused effects, snapshot."),
        _governance("propose_patch", "propose", "Propose a manifest change. patch = {\"ops\": [{\"op\": "
                    "\"add\"|\"replace\"|\"remove\", \"section\": \"schemas\"|\"modules\"|\"workflows\"|\"effects\"|"
                    "\"grants\"|\"routing\"|\"secrets\", \"name\": ..., \"value\": ...}]}. Routes are named by their "
                    "value {event, workflow, key_field?}. Returns the proposal id and the diff.",
                    patch={"type": "object", "description": "the patch", "required": True},
                    reason=_s("why")),
        _governance("shadow_patch", "shadow", "Run a proposal on a fork of the world against recent events (or "
                    "`events`: [{schema, value}]) and report state changes, effects it would emit, grants "
                    "added/dropped and problems (traps, schema violations, refused effects). Required before approve.",
                    proposal=_s("the proposal id, e.g. p1", True),
                    events={"type": "array", "items": {"type": "object"}},
                    sample=_s("how many recent events (default 20)", kind="integer")),
        _governance("approve_patch", "approve", "Approve a proposal whose shadow run found no problem.",
                    proposal=_s("the proposal id", True), reason=_s("why")),
        _governance("reject_patch", "reject", "Reject a proposal.",
                    proposal=_s("the proposal id", True), reason=_s("why")),
        _governance("apply_proposal", "apply", "Switch the world to an approved proposal's manifest.",
                    proposal=_s("the proposal id", True)),
        _governance("rollback_manifest", "rollback", "Switch the world back to an earlier manifest of its history "
                    "(to: its hash; default the one before the current).", to=_s("a manifest hash"),
                    reason=_s("why")),
        _tool("workspace_write", "sys/workspace.write@1", f"Write a file in your workspace ({ws}).",
              {"workspace": ws}, path=_s("e.g. double.c", True), content=_s("the whole file", True)),
        _tool("workspace_read", "sys/workspace.read@1", "Read a file of your workspace (at a commit, if given).",
              {"workspace": ws}, path=_s("the file", True), commit=_s("a commit hash")),
        _tool("workspace_list", "sys/workspace.list@1", "List the files of your workspace.", {"workspace": ws},
              prefix=_s("only paths starting with this")),
        _tool("workspace_diff", "sys/workspace.diff@1", "What changed since the last commit (or between commits).",
              {"workspace": ws}, **{"from": _s("a commit hash"), "to": _s("a commit hash")}),
        _tool("workspace_commit", "sys/workspace.commit@1", "Commit the workspace's files.", {"workspace": ws},
              message=_s("the commit message", True)),
        _tool("compile_module", "sys/module.compile@1", "Compile workspace files to a WASM workflow module: "
              "language c (clang, no libc; #include \"aos_wf.h\" for the step ABI) or wat. Returns the module's "
              "hash (already in CAS) or the compiler's diagnostics.", {"workspace": ws},
              language={"type": "string", "enum": ["c", "wat"], "description": "the language"},
              paths={"type": "array", "items": {"type": "string"}, "description": "files (default: all of it)"},
              opt={"type": "string", "enum": ["O0", "O1", "O2", "Os", "Oz"], "description": "optimization"}),
        _tool("create_world", "sys/universe.create@1", "Create a world in this universe from a manifest "
              "(needs the universe grant; its grants may be timer, blob or cancel).",
              world_id=_s("the new world's id", True), manifest={"type": "object", "description": "the manifest",
                                                                 "required": True}, name=_s("a name")),
        _tool("send_event", "sys/universe.send@1", "Send an event to a world (needs the universe grant).",
              world=_s("the world", True), schema=_s("the event schema", True),
              value={"type": "object", "description": "the event value", "required": True}),
        _tool("list_worlds", "sys/universe.list@1", "The worlds of this universe (needs the universe grant)."),
    ]
    # the target is every world argument's default
    out = []
    for t in specs:
        args = dict(t.args)
        if "world" in args and t.effect != "sys/universe.send@1":
            args["world"] = {"$arg": "world", "default": target}
        out.append(ToolSpec(t.name, t.description, t.parameters, t.effect, args, "auto"))
    return tuple(out)


def grants(target: str, kinds: Iterable[str] = ()) -> dict[str, Any]:
    """The Demiurge world's grants: reading the target always; the ``kinds`` asked for besides."""
    kinds = set(kinds)
    unknown = kinds - set(GRANT_KINDS)
    if unknown:
        raise ValueError(f"unknown demiurge grant {sorted(unknown)[0]!r}; one of {', '.join(GRANT_KINDS)}")
    out: dict[str, Any] = {"read": {"cap": "inspect", "params": {} if "universe" in kinds else {"worlds": [target]}}}
    if "governance" in kinds:
        out["govern"] = {"cap": "governance", "params": {"worlds": [target], "ops": GOVERNANCE_OPS,
                                                         "grant_kinds": GOVERNANCE_GRANT_KINDS}}
    if "workspace" in kinds:
        out["sources"] = {"cap": "workspace", "params": {"workspaces": [workspace_name(target)]}}
    if "compile" in kinds:
        out["compiler"] = {"cap": "compile", "params": {"languages": ["c", "wat"]}}
    if "universe" in kinds:
        out["universe"] = {"cap": "universe", "params": {"ops": ["create", "send", "list"]}}
    return out


def system_prompt(target: str, universe: str, kinds: Iterable[str]) -> str:
    kinds = set(kinds)
    held = ["inspect (read " + ("every world of the universe" if "universe" in kinds else f"world {target}") + ")"]
    held += [k for k in GRANT_KINDS if k in kinds]
    missing = [k for k in GRANT_KINDS if k not in kinds]
    lack = ("You do NOT hold: " + ", ".join(missing) + ". Tools behind those grants are refused by the kernel; "
            "when a task needs one, say plainly that you lack that grant and stop (never pretend).") if missing else ""
    return f"""You are the Demiurge of AOS: the agent that knows, changes and extends a world.
You serve world {target!r} in universe {universe!r}. Every tool is a kernel effect under one of your grants.
Grants you hold: {", ".join(held)}. {lack}

Answer questions from what the tools return, never from guesses: read the overview, the manifest, state,
the journal and the manifest history, and quote the values you read.

Changing the manifest (governance): 1. read_manifest; 2. propose_patch; 3. shadow_patch (on recent events,
or on events you give) and read its report: if ok is false or problems is not empty, do NOT approve: reject the
proposal, fix the patch and propose again; 4. approve_patch; 5. apply_proposal; then check the world (send an
event if you may, read the state). rollback_manifest undoes a change. A patch cannot touch governance or
universe grants, and a module it adds must already be in CAS (compile it first).

Patch format: {{"ops": [{{"op": "add", "section": "schemas", "name": "demo/X@1",
"value": {{"record": {{"n": "int"}}}}}},
{{"op": "add", "section": "modules", "name": "demo/x_wasm@1", "value": {{"runtime": "wasm", "hash": "sha256:..."}}}},
{{"op": "add", "section": "workflows", "name": "demo/x@1", "value": {{"module": "demo/x_wasm@1",
"state": "demo/XState@1",
"event": "demo/XEvent@1"}}}}, {{"op": "add", "section": "routing", "value": {{"event": "demo/XEvent@1",
"workflow": "demo/x@1"}}}}]}}. Types: "int", "nat", "text", "bool", "bytes", {{"record": {{...}}}},
{{"option": T}}, {{"list": T}}, {{"map": T}}, {{"enum": [...]}}, {{"ref": "name"}}. A route's event must be its
workflow's event schema (fan-out: several workflows may take one event schema).

New modules: write C in your workspace with workspace_write (#include "aos_wf.h": CBOR reader rd_get, rd_int,
rd_is_null and writer wr_new, wr_head, wr_text, wr_int, wr_null, wr_done; export step with
__attribute__((export_name("step"))) i64 step(u8 *in, u32 len); the input is {{version, state, event: {{schema,
value}}, ctx}}, the output {{state}}), compile_module it, fix what the diagnostics say and compile again, commit,
then integrate the module through a patch that adds it by the hash compile_module returned.

Be brief. End with a short summary of what you found or changed."""


def demiurge(target: str, universe: str = "default", provider: str = "anthropic", kinds: Iterable[str] = (),
             limits: Limits | None = None) -> AgentDefinition:
    """The Demiurge of ``target`` with the grants in ``kinds`` (governance, workspace, compile, universe)."""
    kinds = tuple(sorted(set(kinds)))
    profile = get_profile(provider)
    specs = tools(target)
    effects = {t.effect: {"params": ANY, "receipt": ANY, "cap": _CAPS[t.effect.split("/", 1)[1].split(".")[0]]}
               for t in specs}
    return AgentDefinition(name="demiurge", profile=profile, system_prompt=system_prompt(target, universe, kinds),
                           tools=specs, limits=limits or DEFAULT_LIMITS, read_only=False, effects=effects,
                           grants=grants(target, kinds))


_CAPS = {"world": "inspect", "governance": "governance", "workspace": "workspace", "module": "compile",
         "universe": "universe"}


def build_demiurge(target: str, task: str | None = None, *, universe: str = "default", provider: str = "anthropic",
                   model: str | None = None, kinds: Iterable[str] = (), session: str = "main",
                   limits: Limits | None = None, date: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(manifest_doc, start)`` of a Demiurge world for ``target``: create the world, send ``start``
    as ``agent/Command@1`` (with ``task`` as its first input, if given)."""
    definition = demiurge(target, universe, provider, kinds, limits)
    model = model or definition.profile.default_model
    env = Environment(working_dir=f"world {target} (universe {universe})", platform=_platform.system().lower(),
                      date=date or _dt.datetime.now(_dt.UTC).date().isoformat(), model=model)
    config = session_config(definition, env, provider, model)
    start: dict[str, Any] = {"session": session, "kind": "start", "config": config}
    if task:
        start["text"] = task
    doc = build_manifest(definition, "/", provider)
    doc["name"] = f"demiurge/{target}"
    return doc, start
