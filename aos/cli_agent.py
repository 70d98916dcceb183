"""``aos agent run`` and ``aos agent replay``: headless coding-agent sessions.

``run`` checks its setup first (a task, the repository, an API key, or
``--twin`` to try it offline), starts a kernel for the repository (or uses
``--connect``), creates the session world with grants on the repository only,
sends the task, and prints the session's events live until the session ends.
Ctrl-C, SIGTERM and a closed stdout abort the session (its running commands
are stopped and the journal says so) before the kernel stops; the kernel also
stops by itself if this process dies any other way. ``replay`` reads the
session's journal straight from the kernel's data directory (nothing is
started, so nothing can call an LLM), replays it through a fresh world to
check it, and prints the same transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aos import cli_twin
from aos.cli_live import LiveView, OutputClosed
from aos.errors import AosError, InvalidArgument, UnknownWorld
from aos.kernel.config import default_data_dir

UNIVERSE = "agents"
# a turn ends with processing_end (its reason says how) or the session with session_end;
# error, turn_limit and loop_detection events come before one of those
ENDS = {"processing_end", "session_end"}
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
ABORT_WAIT = 10.0  # seconds an interrupted run waits for the kernel to stop the session's effects


class NotConfigured(AosError):
    """The run cannot start as set up: no API key for the provider."""


class RepositoryInUse(AosError):
    """Another ``aos agent run`` (its kernel) holds the repository's kernel data directory."""


def agent_data_dir(repo: str) -> str:
    """Each repository gets its own kernel data directory, so replay finds its sessions."""
    digest = hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:12]
    base = os.environ.get("AOS_AGENT_DATA") or os.path.join(os.path.dirname(default_data_dir()), "agents")
    return os.path.join(base, digest)


def add_parser(sub: Any) -> None:
    agent = sub.add_parser("agent", help="headless agent sessions").add_subparsers(dest="action", required=True)
    run = agent.add_parser("run", help="run the coding agent on a repository until the task is done",
                           epilog="API keys: ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY (or "
                                  "AOS_SECRET_<NAME>), for --provider. No key? Try it offline with --twin.")
    run.add_argument("task")
    run.add_argument("--repo", default=".", help="the repository the agent may read, change and run (default: .)")
    run.add_argument("--provider", default="anthropic", choices=("openai", "anthropic", "gemini"))
    run.add_argument("--model", default=None)
    run.add_argument("--session", default="", help="session id (default: generated)")
    run.add_argument("--max-turns", type=int, default=None)
    run.add_argument("--twin", action="store_true",
                     help="offline: a scripted stand-in for the provider on 127.0.0.1 instead of a real model "
                          f"(no API key; it writes {cli_twin.NOTES} in the repository)")
    replay = agent.add_parser("replay", help="print a session's transcript from its journal, offline")
    replay.add_argument("session")
    replay.add_argument("--repo", default=None,
                        help="the repository the session ran in (default: the current directory)")


@dataclass
class Summary:
    turns: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    outcome: str = ""
    ok: bool = False
    models: set[str] = field(default_factory=set)

    def add(self, event: Any) -> None:
        if event.kind == "assistant_text_end":
            self.turns += 1
            usage = event.data.get("usage") or {}
            self.input_tokens += int(usage.get("input_tokens") or 0)
            self.output_tokens += int(usage.get("output_tokens") or 0)
        elif event.kind == "tool_call_start":
            self.tool_calls += 1

    def finish(self, event: Any) -> None:
        reason = str(event.data.get("reason", ""))
        self.ok = event.kind == "processing_end" and reason == "completed"
        self.outcome = f"{event.kind} ({reason})" if reason else event.kind

    def line(self, model: str, provider: str, twin: bool = False) -> str:
        cost = None if twin else _cost(model, provider, self.input_tokens, self.output_tokens)
        price = ", cost $0 (offline twin)" if twin else f", cost ${cost:.4f}" if cost is not None else ", cost unknown"
        return (f"{self.outcome or 'no end'}: {self.turns} turn(s), {self.tool_calls} tool call(s), "
                f"{self.input_tokens} input + {self.output_tokens} output tokens{price}")


def _cost(model: str, provider: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated USD, best effort (unknown models have none). Prices come from litellm's local cost
    map read as JSON, not through ``import litellm``: that import takes ~3 s, most of what a
    replay used to cost; the LLM catalog's list prices cover models the map lacks."""
    if not input_tokens and not output_tokens:
        return 0.0
    table = _price_table()
    for name in (model, f"{provider}/{model}"):
        prices = table.get(name)
        if isinstance(prices, dict) and "input_cost_per_token" in prices and "output_cost_per_token" in prices:
            return float(input_tokens * prices["input_cost_per_token"] + output_tokens * prices["output_cost_per_token"])
    try:
        from aos.adapters.llm.catalog import catalog_cost
        from aos.adapters.llm.types import Usage

        return catalog_cost(model, Usage(input_tokens, output_tokens, input_tokens + output_tokens))
    except Exception:  # pricing is best effort: never fail a run over it
        return None


@lru_cache(maxsize=1)
def _price_table() -> dict[str, Any]:
    import importlib.util

    try:
        spec = importlib.util.find_spec("litellm")  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            return {}
        path = os.path.join(list(spec.submodule_search_locations)[0], "model_prices_and_context_window_backup.json")
        with open(path) as f:
            table = json.load(f)
    except (OSError, ValueError, ImportError):
        return {}
    return table if isinstance(table, dict) else {}


def render(event: Any, as_json: bool) -> str:
    if as_json:
        from aos.cli import dump_json

        return dump_json({"session": event.session, "seq": event.seq, "kind": event.kind, "data": event.data})
    prefix = "" if event.session == "main" else f"[{event.session}] "
    return prefix + event.describe(160)


def check_setup(args: argparse.Namespace) -> tuple[str, str]:
    """``(task, repo)``, or the reason the run cannot start, before anything starts."""
    task = args.task.strip()
    if not task:
        raise InvalidArgument('the task is empty: say what the agent should do, e.g. aos agent run --repo . '
                              '"make the failing test pass"')
    repo = os.path.realpath(args.repo)
    if not os.path.isdir(repo):
        raise InvalidArgument(f"--repo {args.repo}: no such directory")
    if args.twin and args.connect:
        raise InvalidArgument("--twin starts a kernel of its own, pointed at the twin: drop --connect")
    if not args.twin and not args.connect:  # a kernel we start has our environment: check it now
        var = cli_twin.KEY_VARS[args.provider]
        if not (os.environ.get(var) or os.environ.get("AOS_SECRET_" + var)):
            raise NotConfigured(f"no API key for {args.provider}: set {var} (or try the agent offline, no key "
                                f"needed: aos agent run --twin ...)")
    return task, repo


async def _run_session(args: argparse.Namespace, conn: Any, token: str, repo: str, task: str) -> int:
    from aos.agents import COMMAND, Limits, build_world, coding_agent

    admin = await conn.restore_kernel(token)
    worlds = await admin.worlds(UNIVERSE)
    definition = coding_agent(args.provider)
    limits = Limits(max_turns=args.max_turns) if args.max_turns else None
    doc, start = build_world(definition, repo, args.provider, args.model, session="main", task=task, limits=limits)
    session_id = args.session or time.strftime("s-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    world, _ = await worlds.create(doc, {}, session_id, f"agent on {os.path.basename(repo)}")
    model = start["config"].get("model") or ""
    if not args.json:
        twin = " (offline twin)" if args.twin else ""
        print(f"session {session_id}: {args.provider} {model}{twin} in {repo}", flush=True)
    summary = Summary()
    view = LiveView(conn)
    aborting = _Abort()

    async def on_record(seq: int, value: dict[str, Any]) -> None:
        from aos.agents import transcript
        from aos.kernel.world.records import record_from_value

        value.pop("at", None)
        record = record_from_value(value)
        aborting.note(record)
        for event in transcript([record]):
            summary.add(event)
            view.print(render(event, args.json))
            if event.session == "main" and event.kind in ENDS and not view.done:
                summary.finish(event)
                view.finish()
            aborting.note_event(event)

    subscription = await world.tail(0, on_record)
    try:
        await world.send(COMMAND, start)
        await view.wait("the session ran")
    except (asyncio.CancelledError, OutputClosed):
        # Ctrl-C, SIGTERM, or the reader of stdout left: stop the session before its kernel stops,
        # so its running commands are killed and its journal ends with the abort
        await aborting.abort(world)
        raise
    finally:
        with contextlib.suppress(AosError, asyncio.TimeoutError):
            await asyncio.wait_for(subscription.cancel(), 2)
    if not args.json:
        print(summary.line(model, args.provider, args.twin), flush=True)
        print(f"replay it with: aos agent replay {session_id} --repo {repo}", flush=True)
    return 0 if summary.ok else 1


class _Abort:
    """Aborts a session and waits until the kernel has settled the cancellations it asked for."""

    def __init__(self) -> None:
        self.pending: int | None = None  # how many effects session_end said it cancels
        self.cancels: set[str] = set()
        self.settled = 0
        self.done = asyncio.get_running_loop().create_future()

    def note(self, record: Any) -> None:
        from aos.agents.session import CANCEL_EFFECT
        from aos.kernel.world.records import EffectIntentRecord, ReceiptRecord

        if isinstance(record, EffectIntentRecord) and record.effect == CANCEL_EFFECT:
            self.cancels.add(record.intent_hash)
        elif isinstance(record, ReceiptRecord) and record.intent_hash in self.cancels:
            self.settled += 1
        self._check()

    def note_event(self, event: Any) -> None:
        if event.session == "main" and event.kind == "session_end":
            self.pending = len(event.data.get("pending") or [])
        self._check()

    def _check(self) -> None:
        if self.pending is not None and self.settled >= self.pending and not self.done.done():
            self.done.set_result(None)

    async def abort(self, world: Any) -> None:
        from aos.agents import COMMAND, abort_event

        task = asyncio.current_task()
        if task is not None:
            while task.uncancel():  # this clean-up must run even though the task was cancelled
                pass
        with contextlib.suppress(AosError, asyncio.TimeoutError):
            await asyncio.wait_for(world.send(COMMAND, abort_event("main")), 5)
            await asyncio.wait_for(asyncio.shield(self.done), ABORT_WAIT)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM outside the event loop (starting or stopping the kernel) unwinds like Ctrl-C, so the
    ``finally`` that stops the kernel runs; inside the loop ``main`` handles both signals."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from aos import cli_connect
    from aos.kernel.client import Connection
    from aos.kernel.client import run as run_client
    from aos.kernel.process import KernelProcess, KernelStartError

    task, repo = check_setup(args)
    caught: list[int] = []

    async def main(address: str, token: str, tls: Any) -> int:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None

        def on_signal(sig: int) -> None:
            if not caught:
                caught.append(sig)
                me.cancel()

        for sig in EXIT_ON_SIGNAL:
            loop.add_signal_handler(sig, on_signal, sig)
        async with await Connection.open(address, tls=tls) as conn:
            try:
                return await _run_session(args, conn, token, repo, task)
            except asyncio.CancelledError:
                if not caught:
                    raise
                print("aos: interrupted: the session was aborted", file=sys.stderr, flush=True)
                return EXIT_ON_SIGNAL[signal.Signals(caught[0])]
            except OutputClosed as exc:
                raise OutputClosed(f"{exc}: the session was aborted") from None

    with _sigterm_interrupts():
        twin = None
        kernel = None
        try:
            env = dict(os.environ)
            if args.twin:
                twin, twin_env = cli_twin.start(args.provider, repo, task)
                env.update(twin_env)
            if args.connect:
                explicit = args.token_file is not None or "AOS_TOKEN_FILE" in os.environ
                token = cli_connect.read_token(args.token_file or cli_connect.default_token_file(), explicit)
                address, tls = args.connect, cli_connect.tls_options(args)
            else:
                data = agent_data_dir(repo)
                os.makedirs(data, exist_ok=True)
                kernel = KernelProcess(data, extra_args=["--grant-host", repo, "--health", ""], env=env,
                                       exit_with_parent=True)
                try:
                    kernel.start()
                except KernelStartError as exc:
                    kernel = None
                    if exc.locked_by is None:
                        raise
                    raise RepositoryInUse(_busy(exc.locked_by)) from None
                if not args.json:
                    print(f"started a kernel for this repository (data {data})", file=sys.stderr, flush=True)
                address, token, tls = kernel.address, kernel.admin_token, None
            return run_client(main(address, token, tls))
        finally:
            if kernel is not None:
                kernel.stop()
            if twin is not None:
                twin.stop()


def _busy(kernel_pid: int) -> str:
    """Who holds the repository: the ``aos agent run`` that started its kernel, if it is still there."""
    try:
        with open(f"/proc/{kernel_pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        parent = 1
    if parent > 1:
        return f"another run is using this repository, pid {parent} (its kernel: pid {kernel_pid})"
    return f"another run is using this repository, pid {kernel_pid} (its kernel)"


def replay(args: argparse.Namespace) -> int:
    from aos.agents import transcript
    from aos.kernel.host.offline import read_world
    from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest
    from aos.kernel.world import replay as replay_journal

    repo = os.path.realpath(args.repo or ".")
    data = agent_data_dir(repo)
    hint = "" if args.repo else ": pass --repo REPO, the repository the session ran in"
    if not os.path.isdir(os.path.join(data, "db")):
        raise UnknownWorld(f"no agent sessions for {repo}{hint}")
    try:
        offline = read_world(data, UNIVERSE, args.session)
    except UnknownWorld:
        raise UnknownWorld(f"no session {args.session!r} for {repo}{hint}") from None
    records = [decode_record(raw) for raw in offline.records]
    manifest = parse_manifest(offline.manifest)
    # replaying through a fresh world proves the journal is whole and deterministic
    replay_journal(World(manifest, load_runtimes(manifest, {}), args.session), records)
    summary = Summary()
    model = ""
    provider = ""
    for event in transcript(records):
        summary.add(event)
        if event.kind == "session_start":
            model, provider = str(event.data.get("model", "")), str(event.data.get("provider", ""))
        if event.session == "main" and not summary.outcome and event.kind in ENDS:
            summary.finish(event)
        print(render(event, args.json), flush=True)
    if not args.json:
        print(summary.line(model, provider), flush=True)
    return 0


def main(args: argparse.Namespace) -> int:
    """The exit status of ``aos agent ...``; errors propagate to ``aos.cli`` (one line there)."""
    return run(args) if args.action == "run" else replay(args)
