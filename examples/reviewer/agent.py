"""reviewer: a code-review agent that can only read. Run it on a repository.

    .venv/bin/python examples/reviewer/agent.py REPO [--provider anthropic|openai|gemini] [--model M] [--task TEXT]
    .venv/bin/python examples/reviewer/agent.py REPO --offline        # a stand-in model: no key, no network
    .venv/bin/python examples/reviewer/agent.py REPO --bundle DIR     # write the world to DIR and stop

It is the coding agent's machinery with a different definition: its own
system prompt, three read-only tools (``glob``, ``grep``, ``read_file``) and
a read-only ``host.fs`` grant on REPO, so the world it runs in cannot change
the repository even if the model tries. It starts a kernel that may grant
only REPO (as ``aos agent run`` does, in the same data directory, so
``aos agent replay SESSION --repo REPO`` reads the session back), creates
the session world, sends the task, prints every session event as it
happens, and ends with the review. Exit status 0 when the review finished.

``--bundle DIR`` writes ``DIR/manifest.json`` (a world bundle: the session
workflow is Python, so the manifest is the whole bundle) and
``DIR/start.json`` (the ``agent/Command@1`` that starts the session), for
running it on a kernel of your own::

    aos-kernel --grant-host REPO &
    aos world create DIR --id review-1
    aos world send review-1 agent/Command@1 "$(cat DIR/start.json)"
    aos world journal review-1 --tail
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

try:
    from aos.agents import COMMAND, AgentDefinition, Limits, build_world, get_profile, transcript
    from aos.agents.profiles import tools
except ImportError:  # run with a Python that does not have aos installed
    sys.exit("reviewer: the aos package is not importable here; run it with the project's venv:\n"
             "    .venv/bin/python examples/reviewer/agent.py REPO   (./run setup creates .venv)")

SYSTEM_PROMPT = """You are a code reviewer. You read the repository and report; you never change it.

- Find the code the task is about with glob and grep, then read it with read_file.
- Look for bugs, missing error handling, unclear names, missing tests and security problems.
- Cite every finding as path:line with a one-sentence explanation and a suggested fix.
- End with a short verdict: "approve", "approve with comments" or "request changes".
You have no tools that write files or run commands; do not ask for them."""

TASK = "Review the changes in this repository."


def reviewer(profile: str = "anthropic") -> AgentDefinition:
    """The reviewer on a provider profile (the profile gives provider and model only)."""
    return AgentDefinition(
        name="reviewer", profile=get_profile(profile), system_prompt=SYSTEM_PROMPT,
        tools=(tools.glob, tools.grep, tools.read_file), read_only=True,
        limits=Limits(max_tool_rounds_per_input=30, max_subagent_depth=0))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="examples/reviewer/agent.py", description="A read-only review agent.")
    parser.add_argument("repo", help="the repository to review (the agent may only read it)")
    parser.add_argument("--provider", default="anthropic", choices=("anthropic", "openai", "gemini"))
    parser.add_argument("--model", default=None, help="default: the profile's model")
    parser.add_argument("--task", default=TASK)
    parser.add_argument("--offline", action="store_true",
                        help="answer with a stand-in model on 127.0.0.1 (examples/reviewer/stand_in.py), no key")
    parser.add_argument("--bundle", metavar="DIR", help="write DIR/manifest.json and DIR/start.json, run nothing")
    return parser.parse_args(argv)


async def review(address: str, token: str, doc: dict[str, Any], start: dict[str, Any], session_id: str) -> bool:
    """Create the session world, send ``start``, print its events; True when the review completed."""
    from aos.cli_agent import UNIVERSE
    from aos.kernel.client import Connection
    from aos.kernel.world.records import record_from_value

    async with await Connection.open(address) as conn:
        worlds = await (await conn.restore_kernel(token)).worlds(UNIVERSE)
        world, _ = await worlds.create(doc, {}, session_id, "reviewer")
        ended: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        answer: list[str] = []

        async def on_record(seq: int, value: dict[str, Any]) -> None:
            value.pop("at", None)
            for event in transcript([record_from_value(value)]):
                print(event.describe(160), flush=True)
                if event.session != "main":
                    continue
                if event.kind == "assistant_text_end":
                    answer[:] = [str(event.data.get("text") or "")]
                if event.kind in ("processing_end", "session_end") and not ended.done():
                    ended.set_result(event.kind == "processing_end" and event.data.get("reason") == "completed")

        subscription = await world.tail(0, on_record)
        await world.send(COMMAND, start)
        try:
            ok = await ended
        finally:
            await subscription.cancel()
    print("\nreview:\n" + (answer[0] if answer else "(no answer)"), flush=True)
    return ok


def main(argv: list[str]) -> int:
    from aos.cli_agent import agent_data_dir
    from aos.kernel.client import run
    from aos.kernel.process import KernelProcess

    args = parse_args(argv)
    repo = os.path.realpath(args.repo)
    if not os.path.isdir(repo):
        print(f"reviewer: no such directory: {args.repo}", file=sys.stderr)
        return 2
    provider = "anthropic" if args.offline else args.provider
    doc, start = build_world(reviewer(provider), repo, provider, args.model, task=args.task)
    if args.bundle:
        out = Path(args.bundle)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
        (out / "start.json").write_text(json.dumps(start) + "\n")
        print(f"wrote {out / 'manifest.json'} and {out / 'start.json'}")
        return 0

    stand_in = None
    if args.offline:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import stand_in as stand_in_model

        stand_in = stand_in_model.start()
        os.environ.update(stand_in_model.env(stand_in))  # the kernel started below reads its keys from here
    session_id = time.strftime("review-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    data = agent_data_dir(repo)
    os.makedirs(data, exist_ok=True)
    print(f"session {session_id}: {provider} {start['config']['model']} reviewing {repo}"
          f"{' (offline stand-in model)' if args.offline else ''}", flush=True)
    kernel = KernelProcess(data, extra_args=["--grant-host", repo, "--health", ""]).start()
    try:
        ok = run(review(kernel.address, kernel.admin_token, doc, start, session_id))
    finally:
        kernel.stop()
        if stand_in is not None:
            stand_in.stop()
    print(f"replay it with: .venv/bin/aos agent replay {session_id} --repo {repo}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
