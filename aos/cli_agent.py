"""``aos agent run`` and ``aos agent replay``: headless coding-agent sessions.

``run`` starts a kernel for the repository (or uses ``--connect``), creates
the session world with grants on the repository only, sends the task, and
prints the session's events live until the session ends. ``replay`` reads
the session's journal straight from the kernel's data directory (nothing is
started, so nothing can call an LLM), replays it through a fresh world to
check it, and prints the same transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aos.errors import AosError, InvalidArgument
from aos.kernel.config import default_data_dir

UNIVERSE = "agents"
# a turn ends with processing_end (its reason says how) or the session with session_end;
# error, turn_limit and loop_detection events come before one of those
ENDS = {"processing_end", "session_end"}


def agent_data_dir(repo: str) -> str:
    """Each repository gets its own kernel data directory, so replay finds its sessions."""
    digest = hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:12]
    base = os.environ.get("AOS_AGENT_DATA") or os.path.join(os.path.dirname(default_data_dir()), "agents")
    return os.path.join(base, digest)


def add_parser(sub: Any) -> None:
    agent = sub.add_parser("agent", help="headless agent sessions").add_subparsers(dest="action", required=True)
    run = agent.add_parser("run", help="run the coding agent on a repository until the task is done")
    run.add_argument("task")
    run.add_argument("--repo", default=".", help="the repository the agent may read, change and run (default: .)")
    run.add_argument("--provider", default="anthropic", choices=("openai", "anthropic", "gemini"))
    run.add_argument("--model", default=None)
    run.add_argument("--session", default="", help="session id (default: generated)")
    run.add_argument("--max-turns", type=int, default=None)
    replay = agent.add_parser("replay", help="print a session's transcript from its journal, offline")
    replay.add_argument("session")
    replay.add_argument("--repo", default=".", help="the repository the session ran in (default: .)")


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

    def line(self, model: str, provider: str) -> str:
        cost = _cost(model, provider, self.input_tokens, self.output_tokens)
        price = f", cost ${cost:.4f}" if cost is not None else ", cost unknown"
        return (f"{self.outcome}: {self.turns} turn(s), {self.tool_calls} tool call(s), "
                f"{self.input_tokens} input + {self.output_tokens} output tokens{price}")


def _cost(model: str, provider: str, input_tokens: int, output_tokens: int) -> float | None:
    try:
        from aos.adapters.llm.catalog import estimate_cost
        from aos.adapters.llm.types import Usage

        return estimate_cost(model, Usage(input_tokens, output_tokens, input_tokens + output_tokens), provider)
    except Exception:  # pricing is best effort: unknown models have none
        return None


def render(event: Any, as_json: bool) -> str:
    if as_json:
        from aos.kernel.host import jsonvalue

        return json.dumps(jsonvalue.to_jsonable({"session": event.session, "seq": event.seq, "kind": event.kind,
                                                 "data": event.data}), sort_keys=True)
    prefix = "" if event.session == "main" else f"[{event.session}] "
    return prefix + event.describe(160)


async def _run_session(args: argparse.Namespace, conn: Any, token: str, repo: str) -> int:
    from aos.agents import COMMAND, Limits, build_world, coding_agent, transcript
    from aos.kernel.world.records import record_from_value

    admin = await conn.restore_kernel(token)
    worlds = await admin.worlds(UNIVERSE)
    definition = coding_agent(args.provider)
    limits = Limits(max_turns=args.max_turns) if args.max_turns else None
    doc, start = build_world(definition, repo, args.provider, args.model, session="main", task=args.task,
                             limits=limits)
    session_id = args.session or time.strftime("s-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    world, _ = await worlds.create(doc, {}, session_id, f"agent on {os.path.basename(repo)}")
    model = start["config"].get("model") or ""
    if not args.json:
        print(f"session {session_id}: {args.provider} {model} in {repo}", flush=True)
    summary = Summary()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_record(seq: int, value: dict[str, Any]) -> None:
        value.pop("at", None)
        record = record_from_value(value)
        for event in transcript([record]):
            summary.add(event)
            print(render(event, args.json), flush=True)
            if event.session == "main" and event.kind in ENDS and not done.done():
                summary.finish(event)
                done.set_result(None)

    subscription = await world.tail(0, on_record)
    await world.send(COMMAND, start)
    try:
        await done
    finally:
        await subscription.cancel()
    if not args.json:
        print(summary.line(model, args.provider), flush=True)
        print(f"replay it with: aos agent replay {session_id} --repo {repo}", flush=True)
    return 0 if summary.ok else 1


def run(args: argparse.Namespace) -> int:
    from aos.kernel.client import Connection
    from aos.kernel.client import run as run_client
    from aos.kernel.process import KernelProcess

    repo = os.path.realpath(args.repo)
    if not os.path.isdir(repo):
        raise InvalidArgument(f"no such directory: {args.repo}")
    kernel = None
    if args.connect:
        address = args.connect
        with open(args.token_file or os.path.join(default_data_dir(), "admin.token")) as f:
            token = f.read().strip()
    else:
        data = agent_data_dir(repo)
        os.makedirs(data, exist_ok=True)
        if not args.json:
            print(f"starting a kernel for this repository (data {data})", file=sys.stderr, flush=True)
        kernel = KernelProcess(data, extra_args=["--grant-host", repo, "--health", ""]).start()
        address, token = kernel.address, kernel.admin_token

    async def main() -> int:
        async with await Connection.open(address) as conn:
            return await _run_session(args, conn, token, repo)

    try:
        return run_client(main())
    finally:
        if kernel is not None:
            kernel.stop()


def replay(args: argparse.Namespace) -> int:
    from aos.agents import transcript
    from aos.kernel.host.offline import read_world
    from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest
    from aos.kernel.world import replay as replay_journal

    repo = os.path.realpath(args.repo)
    offline = read_world(agent_data_dir(repo), UNIVERSE, args.session)
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


def main(args: argparse.Namespace) -> None:
    try:
        code = run(args) if args.action == "run" else replay(args)
    except AosError as exc:
        print(f"aos: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
