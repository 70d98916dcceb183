"""The shell's commands: each takes a parsed ``Command`` and a ``Session`` and
returns blocks to show (``render``). No terminal here; the REPL and the script
runner call ``execute``.

``execute`` connects on first need and after a lost connection, and turns a
lost connection into ``KernelUnavailable`` with the session marked lost, so
the next command reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aos.cli import human_size
from aos.cli_world import _ago, _all_states, _line, load_bundle_doc, trap_lines
from aos.errors import AosError, InvalidArgument, KernelUnavailable, PermissionDenied
from aos.kernel.host import jsonvalue
from aos.shell.parse import Command, Grammar
from aos.shell.render import Inline, Json, Line, Output, Table, record_style
from aos.shell.session import Session

Emit = Callable[[Output], None]
Ask = Callable[[str], Awaitable["str | None"]]


class UnknownCommand(InvalidArgument):
    code = "UnknownCommand"


class NotAvailable(AosError):
    """A command the issue names that needs parts of AOS not built yet."""

    code = "NotAvailable"


class ExitShell(Exception):
    """``exit``: leave the shell (control flow, not an error)."""


@dataclass(frozen=True, slots=True)
class Context:
    session: Session
    emit: Emit  # show output now (for streaming commands such as `journal --tail`)
    ask: Ask | None = None  # read a line from the user while the command runs (None at Ctrl-D/Ctrl-C)


Handler = Callable[[Context, Command], Awaitable[Output]]


@dataclass(frozen=True, slots=True)
class Spec:
    """A command: how to call it, what it does, and how its line parses."""

    name: str
    usage: str
    summary: str
    handler: Handler
    grammar: Grammar = field(default_factory=Grammar)
    detail: str = ""
    kernel: bool = True  # needs a connection
    streams: bool = False  # prints as it goes (no spinner)
    args: tuple[int, int] = (0, 0)  # min, max positional words


COMMANDS: dict[str, Spec] = {}
ALIASES = {"quit": "exit", "ls": "worlds", "?": "help"}
NOT_YET: dict[str, str] = {}


def command(name: str, usage: str, summary: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Spec(name, usage, summary, handler, **kwargs)
        return handler

    return register


def grammars() -> dict[str, Grammar]:
    table = {name: spec.grammar for name, spec in COMMANDS.items()}
    table.update({alias: COMMANDS[target].grammar for alias, target in ALIASES.items()})
    return table


def spec_for(name: str) -> Spec:
    if name in NOT_YET:
        raise NotAvailable(f"{name}: not available yet: {NOT_YET[name]}")
    spec = COMMANDS.get(ALIASES.get(name, name))
    if spec is None:
        raise UnknownCommand(f"{name!r} is not a command (type `help` for the list)")
    return spec


async def execute(session: Session, cmd: Command, emit: Emit, note: Emit | None = None,
                  ask: Ask | None = None) -> Output:
    """Run one command; raises ``AosError`` (the caller shows it) or ``ExitShell``.

    ``emit`` shows output as it comes (streaming commands); ``note`` shows
    connection news ("reconnected", a kernel started) and defaults to ``emit``;
    ``ask`` reads a line from the user (interactive ``agent chat``).
    """
    spec = spec_for(cmd.name)
    low, high = spec.args
    if not low <= len(cmd.args) <= high:
        raise InvalidArgument(f"usage: {spec.usage}")
    if not spec.kernel:
        return await spec.handler(Context(session, emit, ask), cmd)
    for news in await session.ensure():
        (note or emit)([Line(news, "warn")])
    try:
        return await spec.handler(Context(session, emit, ask), cmd)
    except KernelUnavailable:
        session.lost()
        raise


def _json_arg(text: str, what: str) -> Any:
    return jsonvalue.loads(text, what)


# --- kernel and universe --------------------------------------------------------------------
@command("status", "status", "the kernel: version, uptime, load and limits")
async def _status(ctx: Context, cmd: Command) -> Output:
    if ctx.session.cluster is not None:
        return await _cluster_status(ctx)
    assert ctx.session.kernel is not None
    s = await ctx.session.kernel.status()
    limits = s["limits"]
    rows = (
        ("kernel", f"aos-kernel {s['version']} at {ctx.session.target.address}"),
        ("uptime", _ago(s["startedAtMs"]).replace(" ago", "")),
        ("data", s["dataDir"]),
        ("connections", str(s["connections"])),
        ("worlds", f"{s.get('hostedWorlds', 0)}, all universes"),
        ("raw journals", f"{s.get('rawJournals', 0)}, all universes (aos journal; not worlds)"),
        ("commits", f"{s['commitTurns']} group commits, {s['committedRecords']} records"),
        ("limits", (f"message {human_size(limits['maxMessageBytes'])}, blob {human_size(limits['maxBlobBytes'])}, "
                    f"{limits['maxRecordsPerAppend']} records/append")),
        ("you are in", ctx.session.where()),
    )
    return [Table(("", ""), rows, tuple(("key", "") for _ in rows))]


async def _cluster_status(ctx: Context) -> Output:
    """The cluster as its scheduler sees it (a universe token sees its universe only)."""
    from aos.kernel.scheduler.client import SchedulerClient

    cluster = ctx.session.cluster
    assert cluster is not None
    if not isinstance(cluster.cap, SchedulerClient):
        info = await (await cluster.universe(ctx.session.universe)).info()
        rows: tuple[tuple[str, str], ...] = (
            ("scheduler", ctx.session.target.address),
            ("universe", f"{info['universeId']} ({info.get('name') or 'no name'}), {info.get('worlds', 0)} worlds"),
            ("you are in", ctx.session.where()),
        )
        return [Table(("", ""), rows, tuple(("key", "") for _ in rows))]
    s = await cluster.scheduler.status()
    leader = s["leader"]
    head: tuple[tuple[str, str], ...] = (
        ("scheduler", f"leader {leader.get('id') or '(election running)'} at {leader.get('address', '')}"),
        ("universes", str(len(s.get("universes", [])))),
        ("waiting", f"{s.get('waiting', 0)} worlds without a live host"),
        ("you are in", ctx.session.where()),
    )
    hosts = tuple((h["hostId"], h["address"], str(h["worlds"]), f"{h['load']:g}/{h['capacity']:g}",
                   "draining" if h["draining"] else "live") for h in s.get("hosts", []))
    return [Table(("", ""), head, tuple(("key", "") for _ in head)),
            Table(("HOST", "ADDRESS", "WORLDS", "LOAD", "STATE"), hosts, tuple(("", "dim", "", "", "") for _ in hosts),
                  empty="(no hosts have joined)")]


@command("universe", "universe [NAME]", "show the universe, or switch to NAME (leaves the world)", args=(0, 1))
async def _universe(ctx: Context, cmd: Command) -> Output:
    if not cmd.args:
        return [Line(f"universe {ctx.session.universe}")]
    before = ctx.session.universe
    await ctx.session.switch_universe(cmd.args[0])
    out: Output = [Line(f"now in universe {ctx.session.universe}", "dim")]
    if cmd.args[0] != before and not await (await ctx.session.worlds()).list():
        # universes need no creation, so a typo silently gives an empty one: say so
        out.append(Line(f"universe {cmd.args[0]} has no worlds yet (universes need no creation: if that is a "
                        f"typo, `universe {before}` goes back)", "warn"))
    return out


# --- worlds ---------------------------------------------------------------------------------
@command("worlds", "worlds", "list the worlds of this universe")
async def _worlds(ctx: Context, cmd: Command) -> Output:
    listed = sorted(await (await ctx.session.worlds()).list(), key=lambda w: w["worldId"])
    if ctx.session.cluster is not None:  # the scheduler knows where each runs, the hosts the rest
        placed = tuple((("* " if w["worldId"] == ctx.session.world_id else "  ") + w["worldId"], w["name"],
                        w["hostId"] or "-", w["state"] + (f" ({w['reason']})" if w["reason"] else ""))
                       for w in listed)
        return [Table(("  ID", "NAME", "HOST", "STATE"), placed,
                      tuple(("", "", "dim", "ok" if row[3] == "running" else "warn") for row in placed),
                      empty=f"(no worlds in universe {ctx.session.universe}: make one with `create BUNDLE_DIR`)")]
    rows, styles = [], []
    for w in listed:
        here = w["worldId"] == ctx.session.world_id
        rows.append((("* " if here else "  ") + w["worldId"], w["name"], "awake" if w["awake"] else "hibernated",
                     str(w["journalHeight"]), _ago(w["lastEventMs"])))
        styles.append(("bold" if here else "", "", "ok" if w["awake"] else "dim", "", "dim"))
    return [Table(("  ID", "NAME", "STATE", "JOURNAL", "LAST EVENT"), tuple(rows), tuple(styles),
                  empty=f"(no worlds in universe {ctx.session.universe}: make one with `create BUNDLE_DIR`)")]


@command("world", "world ID | world ..", "enter a world (`..` goes back to the universe)", args=(0, 1))
async def _world(ctx: Context, cmd: Command) -> Output:
    if not cmd.args:
        return [Line(f"in world {ctx.session.world_id}" if ctx.session.world_id else "not in a world")]
    if cmd.args[0] in ("..", "/"):
        ctx.session.leave()
        return []
    await ctx.session.enter(cmd.args[0])
    return []


@command("leave", "leave", "go back from the world to the universe", kernel=False)
async def _leave(ctx: Context, cmd: Command) -> Output:
    ctx.session.leave()
    return []


@command("create", "create BUNDLE_DIR [--id ID] [--name NAME] [--grant-root DIR]",
         "create a world from a bundle directory (manifest.json and its modules)", args=(1, 1),
         grammar=Grammar(valued=frozenset({"id", "name", "grant-root"})),
         detail="--grant-root DIR fills in ${AOS_GRANT_ROOT} for manifests that grant a host directory.")
async def _create(ctx: Context, cmd: Command) -> Output:
    bundle = os.path.expanduser(cmd.args[0])
    grant_root = cmd.options.get("grant-root")
    doc, wasm = load_bundle_doc(bundle, os.path.expanduser(grant_root) if grant_root else None)
    worlds = await ctx.session.worlds()
    _, info = await worlds.create(doc, wasm, cmd.options.get("id", ""), cmd.options.get("name", ""))
    return [Line(f"created world {info['worldId']} ({info['name']}), journal height {info['journalHeight']}"),
            Line(f"enter it with: world {info['worldId']}", "dim")]


@command("fork", "fork [--id NEW] [--name NAME]", "start a new world from this world's state (you stay here)",
         grammar=Grammar(valued=frozenset({"id", "name"})))
async def _fork(ctx: Context, cmd: Command) -> Output:
    await ctx.session.world()
    _, info = await (await ctx.session.worlds()).fork(ctx.session.world_id, cmd.options.get("id", ""),
                                                      cmd.options.get("name", ""))
    return [Line(f"forked world {info['worldId']} ({info['name']}) from {ctx.session.world_id}"),
            Line(f"enter it with: world {info['worldId']}", "dim")]


# --- inside a world -------------------------------------------------------------------------
@command("send", "send SCHEMA JSON", "send an event to this world", args=(2, 2),
         grammar=Grammar(rest_at=1),
         detail='The JSON is the rest of the line, unquoted: send demo/CounterEvent@1 {"by": 2}')
async def _send(ctx: Context, cmd: Command) -> Output:
    value = _json_arg(cmd.args[1], "the event value")
    seq, outcome = await (await ctx.session.world()).send_with_outcome(cmd.args[0], value)
    return [Line(f"event journaled at seq {seq}")] + [Line(line, "error") for line in trap_lines(outcome)]


@command("state", "state [WORKFLOW] [--key JSON]", "this world's state: every workflow, or one (one cell with --key)",
         args=(0, 1), grammar=Grammar(valued=frozenset({"key"}), rest_option="key"),
         detail='--key takes the rest of the line as JSON: state demo/cells@1 --key "a"')
async def _state(ctx: Context, cmd: Command) -> Output:
    world = await ctx.session.world()
    if not cmd.args:
        if "key" in cmd.options:
            raise InvalidArgument("--key needs a WORKFLOW")
        states = await _all_states(world)
        if not states:
            return [Line("(no workflow has state yet)", "dim")]
        return [Json(value, name) for name, value in states.items()]
    key = _json_arg(cmd.options["key"], "--key") if "key" in cmd.options else None
    value = await world.state(cmd.args[0], key)
    if value is None:
        return [Line(f"(no state for {cmd.args[0]}{'' if key is None else ' key ' + jsonvalue.dumps(key)})", "dim")]
    return [Json(value, cmd.args[0])]


@command("cells", "cells WORKFLOW", "the cell keys of a keyed workflow", args=(1, 1))
async def _cells(ctx: Context, cmd: Command) -> Output:
    keys = await (await ctx.session.world()).cells(cmd.args[0])
    if not keys or keys == [None]:
        return [Line(f"(no cells: {cmd.args[0]} is not keyed or has no state yet)", "dim")]
    count = f"({len(keys)} cell{'' if len(keys) == 1 else 's'})"
    return [Line(k if isinstance(k, str) else jsonvalue.dumps(k)) for k in keys] + [Line(count, "dim")]


@command("journal", "journal [--tail] [--from SEQ] [--limit N]",
         "this world's journal: the last records, or follow it live with --tail (Ctrl-C stops)",
         grammar=Grammar(flags=frozenset({"tail"}), valued=frozenset({"from", "limit"})), streams=True,
         detail="--limit N: at most N records: the last N (default 20, or 10 before --tail), or the first N "
                "from --from SEQ; the same as `aos world journal`.")
async def _journal(ctx: Context, cmd: Command) -> Output:
    world = await ctx.session.world()
    limit = _int_option(cmd, "limit", 10 if "tail" in cmd.options else 20)
    if "from" in cmd.options:
        start = _int_option(cmd, "from", 0)
    else:
        info, _ = await world.describe()
        start = max(0, int(info["journalHeight"]) - limit)
    if "tail" in cmd.options:
        await _tail(ctx, world, start)
        return []
    records, next_seq = await world.journal(start, limit)
    return [Line(_line(r), record_style(r)) for r in records] + [Line(f"(next seq {next_seq})", "dim")]


def _int_option(cmd: Command, name: str, default: int) -> int:
    text = cmd.options.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"--{name} wants a number, not {text!r}") from None
    if value < 0:
        raise InvalidArgument(f"--{name} must not be negative")
    return value


async def _tail(ctx: Context, world: Any, start: int) -> None:
    from aos.kernel.scheduler.client import FollowingWorld

    shown = start  # the next seq to show: a tail opened again after a move starts there

    async def on_record(seq: int, record: dict[str, Any]) -> None:
        nonlocal shown
        if seq < shown:
            return
        shown = seq + 1
        ctx.emit([Line(_line(record), record_style(record))])

    async def on_frame(intent_hash: str, frame: Any) -> None:
        ctx.emit([Line(f"{'':>8}  ~ frame {intent_hash[:19]} {jsonvalue.dumps(frame)[:100]}", "dim")])

    subscription = await world.tail(start, on_record, on_frame)
    ctx.emit([Line(f"following {ctx.session.world_id} from seq {start} (Ctrl-C to stop)", "dim")])
    try:
        while True:  # a tail has no end; check now and then that the kernel is still there
            if not isinstance(world, FollowingWorld):
                await asyncio.sleep(3)
                await ctx.session.ping()
                continue
            # on a cluster: a read finds the world again if it moved; the tail then goes on on its new host
            await asyncio.sleep(1)
            moves = world.moves
            await world.describe()
            if world.moves != moves:
                with contextlib.suppress(AosError, asyncio.TimeoutError):
                    await asyncio.wait_for(subscription.cancel(), 2)
                subscription = await world.tail(shown, on_record, on_frame)
                ctx.emit([Line(f"({ctx.session.world_id} moved host: following it there from seq {shown})",
                               "dim")])
    finally:
        with contextlib.suppress(AosError, asyncio.TimeoutError):
            await asyncio.wait_for(subscription.cancel(), 2)


@command("snapshot", "snapshot", "snapshot this world's state into CAS")
async def _snapshot(ctx: Context, cmd: Command) -> Output:
    address, seq = await (await ctx.session.world()).snapshot()
    return [Line(f"snapshot {address} (journal seq {seq})")]


# --- grants -----------------------------------------------------------------------------------
async def _world_for_grants(ctx: Context) -> Any:
    if not ctx.session.world_id:
        raise InvalidArgument("enter a world first: `world ID` (see `worlds`)")
    return await ctx.session.world()


@command("grants", "grants", "this world's grants: name, capability, on or off, parameters")
async def _grants(ctx: Context, cmd: Command) -> Output:
    listed = await (await _world_for_grants(ctx)).grants()
    rows = tuple((g["name"], g["cap"], "yes" if g["active"] else "no (revoked)", jsonvalue.dumps(g["params"]))
                 for g in sorted(listed, key=lambda g: g["name"]))
    styles = tuple(("bold", "", "ok" if g["active"] else "warn", "dim") for g in sorted(listed, key=lambda g: g["name"]))
    return [Table(("NAME", "CAP", "ACTIVE", "PARAMS"), rows, styles, empty="(this world has no grants)")]


async def _switch_grant(ctx: Context, name: str, active: bool) -> Output:
    world = await _world_for_grants(ctx)
    await world.set_grant(name, active)
    if active:
        return [Line(f"grant {name} is active again in {ctx.session.world_id}")]
    return [Line(f"grant {name} revoked in {ctx.session.world_id}: its effects now settle as errors (`grant {name}` "
                 "turns it back on)")]


@command("revoke", "revoke NAME", "switch one of this world's grants off (its next effects fail as revoked)",
         args=(1, 1))
async def _revoke(ctx: Context, cmd: Command) -> Output:
    return await _switch_grant(ctx, cmd.args[0], False)


@command("grant", "grant NAME", "switch a revoked grant of this world back on", args=(1, 1))
async def _grant(ctx: Context, cmd: Command) -> Output:
    return await _switch_grant(ctx, cmd.args[0], True)


# --- agents -----------------------------------------------------------------------------------
PROVIDERS = ("anthropic", "openai", "gemini")
AGENT_SESSION = "main"
TOOL_LINE = 120  # characters of a tool call's arguments or result shown


class AgentFailed(AosError):
    """The agent's turn ended in an error event (its ``code`` is the event's)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@command("agent", "agent new [--repo DIR ...] | agent chat [TEXT]",
         "create a coding-agent world and enter it, or talk to the agent of this world", args=(1, 2),
         grammar=Grammar(valued=frozenset({"repo", "provider", "model", "id"}), rest_at=1), streams=True,
         detail=("agent new [--repo DIR] [--provider anthropic|openai|gemini] [--model M] [--id ID]: a session world "
                 "for DIR (default: the current directory); the kernel must grant DIR (aos-kernel --grant-host DIR). "
                 "agent chat TEXT: one turn, streamed; agent chat alone: a turn per line until an empty line or "
                 "Ctrl-D. Ctrl-C interrupts a turn, which closes the session."))
async def _agent(ctx: Context, cmd: Command) -> Output:
    action = cmd.args[0]
    if action == "new" and len(cmd.args) == 1:
        return await _agent_new(ctx, cmd)
    if action == "chat":
        if cmd.options:
            raise InvalidArgument(f"agent chat takes no options (got --{min(cmd.options)})")
        return await _agent_chat(ctx, cmd.args[1] if len(cmd.args) == 2 else "")
    raise InvalidArgument(f"usage: {COMMANDS['agent'].usage}")


async def _agent_new(ctx: Context, cmd: Command) -> Output:
    from aos.agents import COMMAND, build_world, coding_agent

    repo = os.path.realpath(os.path.expanduser(cmd.options.get("repo") or os.getcwd()))
    if not os.path.isdir(repo):
        raise InvalidArgument(f"no such directory: {repo}")
    provider = cmd.options.get("provider", "anthropic")
    if provider not in PROVIDERS:
        raise InvalidArgument(f"--provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    doc, start = build_world(coding_agent(provider), repo, provider, cmd.options.get("model"), session=AGENT_SESSION)
    world_id = cmd.options.get("id") or time.strftime("s-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    worlds = await ctx.session.worlds()
    try:
        world, _ = await worlds.create(doc, {}, world_id, f"agent on {os.path.basename(repo)}")
    except PermissionDenied as exc:
        if "--grant-host" not in str(exc):
            raise
        raise PermissionDenied(_not_granted(ctx.session, repo)) from None
    await world.send(COMMAND, start)
    await ctx.session.enter(world_id)
    model = start["config"].get("model") or "(default model)"
    return [Line(f"created agent world {world_id}: {provider} {model} on {repo}"),
            Line("talk to it: agent chat TEXT (one turn), or agent chat (a turn per line, empty line ends); "
                 "Ctrl-C interrupts a turn", "dim")]


def _not_granted(session: Session, repo: str) -> str:
    target = session.target
    if target.data_dir:
        return (f"the local kernel does not grant {repo}: stop it and start one that does: "
                f"aos-kernel --data {target.data_dir} --grant-host {repo}")
    return (f"the kernel at {target.address} does not grant {repo}: start a kernel that does "
            f"(aos-kernel --grant-host {repo}) and connect to it with --connect")


async def _agent_chat(ctx: Context, text: str) -> Output:
    from aos.agents import WORKFLOW

    world = await ctx.session.world()
    if WORKFLOW not in await world.workflows():
        raise InvalidArgument(f"{ctx.session.world_id} is not an agent world (make one with `agent new`)")
    if text:
        await _turn(ctx, world, text)
        return []
    if ctx.ask is None:
        raise InvalidArgument("agent chat with no TEXT reads turns from the terminal; in a script give the TEXT")
    ctx.emit([Line("one turn per line; an empty line or Ctrl-D ends the chat", "dim")])
    while (line := await ctx.ask("you> ")) and line.strip():
        if not await _turn(ctx, world, line.strip()):
            break
    return []


async def _turn(ctx: Context, world: Any, text: str) -> bool:
    """Send one user turn and show the session's events until the turn ends; False if Ctrl-C interrupted it."""
    from aos.agents import COMMAND, WORKFLOW, abort_event, input_event, transcript
    from aos.kernel.world.records import EffectIntentRecord, ReceiptRecord, record_from_value

    state = await world.state(WORKFLOW, AGENT_SESSION)
    if state is None:
        raise InvalidArgument(f"no agent session {AGENT_SESSION!r} in {ctx.session.world_id}")
    if state["status"] == "closed":
        raise InvalidArgument(f"the agent session in {ctx.session.world_id} is closed (interrupted or ended): "
                              "start a new one with `agent new`")
    done: asyncio.Future[AgentFailed | None] = asyncio.get_running_loop().create_future()
    # Model text streams as frames of its llm intent. The tail may deliver an intent's frames before the records
    # that precede the intent (the tool calls of the round before), so frames wait until their intent's record has
    # come, and a reply whose text was shown from frames is not shown again at its assistant_text_end.
    intents: set[str] = set()  # intents whose effect_intent record has been seen
    held: dict[str, list[str]] = {}  # text of intents not seen yet
    shown: set[str] = set()  # intents whose text was shown from frames
    settled: set[str] = set()
    receipt = [""]  # the intent whose receipt the events being read answer

    def finish(result: AgentFailed | None) -> None:
        if not done.done():
            done.set_result(result)

    def show_text(intent: str, text: str) -> None:
        if text and not done.done():
            shown.add(intent)
            ctx.emit([Inline(text)])

    async def on_record(seq: int, value: dict[str, Any]) -> None:
        value.pop("at", None)
        record = record_from_value(value)
        if isinstance(record, EffectIntentRecord):
            intents.add(record.intent_hash)
            show_text(record.intent_hash, "".join(held.pop(record.intent_hash, [])))
        elif isinstance(record, ReceiptRecord):
            receipt[0] = record.intent_hash
            settled.add(record.intent_hash)
            held.pop(record.intent_hash, None)
        for event in transcript([record], session=AGENT_SESSION):
            data = event.data
            if event.kind == "assistant_text_end":
                if receipt[0] not in shown and data.get("text"):
                    ctx.emit([Line(str(data["text"]))])
            elif event.kind == "tool_call_start":
                ctx.emit([Line(_clip(f"> {data.get('tool_name')} {_compact(data.get('arguments'))}"), "dim")])
            elif event.kind == "tool_call_end":
                error = "error: " if data.get("is_error") else ""
                ctx.emit([Line(_clip(f"< {data.get('tool_name')} {error}{_compact(data.get('output'))}"),
                               "warn" if error else "dim")])
            elif event.kind in ("warning", "turn_limit", "loop_detection"):
                ctx.emit([Line(f"{event.kind}: {data.get('message', '')}", "warn")])
                if event.kind == "warning" and "closed" in str(data.get("message", "")):
                    finish(AgentFailed("SessionClosed", str(data.get("message"))))
            elif event.kind == "error":
                finish(AgentFailed(str(data.get("code") or "AgentError"), str(data.get("message") or "")))
            elif event.kind in ("processing_end", "session_end"):
                finish(None)

    async def on_frame(intent: str, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("type") != "text_delta" or intent in settled:
            return
        delta = str(frame.get("delta") or "")
        if intent in intents:
            show_text(intent, delta)
        else:
            held.setdefault(intent, []).append(delta)

    info, _ = await world.describe()
    subscription = await world.tail(int(info["journalHeight"]), on_record, on_frame)
    try:
        await world.send(COMMAND, input_event(AGENT_SESSION, text))
        while not done.done():  # a lost kernel never ends the turn: check on it now and then
            await asyncio.wait({done}, timeout=3)
            if not done.done():
                await ctx.session.ping()
    except asyncio.CancelledError:
        with contextlib.suppress(AosError, asyncio.TimeoutError):
            await asyncio.wait_for(world.send(COMMAND, abort_event(AGENT_SESSION)), 5)
        ctx.emit([Line("(turn interrupted: the session is closed)", "dim")])
        return False
    finally:
        with contextlib.suppress(AosError, asyncio.TimeoutError):
            await asyncio.wait_for(subscription.cancel(), 2)
    failed = done.result()
    if failed is not None:
        raise failed
    return True


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    return jsonvalue.dumps(value)


def _clip(text: str) -> str:
    return text if len(text) <= TOOL_LINE else text[:TOOL_LINE - 1] + "…"


# --- cas --------------------------------------------------------------------------------------
@command("cas", "cas put FILE | cas get HASH [FILE]", "store a file in CAS, or read a blob (to FILE, or shown)",
         args=(2, 3))
async def _cas(ctx: Context, cmd: Command) -> Output:
    action, target = cmd.args[0], cmd.args[1]
    cas = await ctx.session.cas()
    if action == "put" and len(cmd.args) == 2:
        path = os.path.expanduser(target)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
        address = await cas.put(data)
        return [Line(f"{address}  {human_size(len(data))}")]
    if action == "get":
        data = await cas.get(target)
        if len(cmd.args) == 3:
            path = os.path.expanduser(cmd.args[2])
            try:
                with open(path, "wb") as f:
                    f.write(data)
            except OSError as exc:
                raise InvalidArgument(f"cannot write {path}: {exc.strerror}") from None
            return [Line(f"wrote {human_size(len(data))} to {path}")]
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return [Line(f"({human_size(len(data))} of binary data: give a FILE to save it)", "dim")]
        return [Line(text.rstrip("\n"))] if text.isprintable() or "\n" in text else \
            [Line(f"({human_size(len(data))} of non-printable text: give a FILE to save it)", "dim")]
    raise InvalidArgument("usage: cas put FILE | cas get HASH [FILE]")


# --- the shell itself -----------------------------------------------------------------------
@command("help", "help [COMMAND]", "list the commands, or explain one", kernel=False, args=(0, 1))
async def _help(ctx: Context, cmd: Command) -> Output:
    if cmd.args:
        spec = spec_for(cmd.args[0])
        out: Output = [Line(spec.usage, "bold"), Line("  " + spec.summary)]
        return out + ([Line("  " + spec.detail, "dim")] if spec.detail else [])
    rows = tuple((spec.usage, spec.summary) for spec in COMMANDS.values())
    return [Table(("COMMAND", "WHAT IT DOES"), rows, tuple(("key", "") for _ in rows)),
            Line("several commands on one line: separate them with ;", "dim")]


@command("exit", "exit", "leave the shell (or Ctrl-D)", kernel=False)
async def _exit(ctx: Context, cmd: Command) -> Output:
    raise ExitShell()


# governance and the Demiurge (propose, shadow, approve, reject, apply, rollback, history, manifest, demiurge)
from aos.shell import governance as _governance  # noqa: E402,F401
