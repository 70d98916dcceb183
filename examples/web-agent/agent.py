"""web-agent: an agent with a browser, confined to the origins you name. Run it on a web application.

    .venv/bin/python examples/web-agent/agent.py URL [--origin ORIGIN ...] [--task TEXT] [--provider P] [--model M]
    .venv/bin/python examples/web-agent/agent.py URL --offline      # a stand-in model: no key, no network
    .venv/bin/python examples/web-agent/agent.py URL --bundle DIR   # write the world to DIR and stop

The agent is ``aos.agents.web.web_agent``: the SDK's session workflow with
the browser tools (``aos.agents.tools.browser``: navigate, snapshot, click,
type, fill, screenshot, logs) and one ``browser`` grant naming the origins it
may reach (default: URL's own). It starts a kernel of its own (data in a
temporary directory; Debian's ``chromium`` must be installed), creates the
world, sends the task, prints every session event as it happens, and ends
with the agent's answer. Exit status 0 when the task completed.

``--offline`` answers with a stand-in model on 127.0.0.1 that opens URL,
takes a snapshot and reports the page's title and first lines: the kernel,
the browser, the grant and the page are real; only the model is scripted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    from aos.agents import COMMAND, transcript
    from aos.agents.web import build_web_agent
except ImportError:
    sys.exit("web-agent: the aos package is not importable here; run it with the project's venv:\n"
             "    .venv/bin/python examples/web-agent/agent.py URL   (./run setup creates .venv)")

TASK = "Open {url} and tell me what the page is for."
STAND_IN_KEY = "stand-in-key-not-secret"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="examples/web-agent/agent.py", description="An agent with a browser.")
    parser.add_argument("url", help="where the agent starts (an http(s) url)")
    parser.add_argument("--origin", action="append", default=[],
                        help="an origin it may visit, scheme://host[:port] (repeat; default: the url's own)")
    parser.add_argument("--task", default=None)
    parser.add_argument("--provider", default="anthropic", choices=("anthropic", "openai", "gemini"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--offline", action="store_true", help="a stand-in model on 127.0.0.1, no key")
    parser.add_argument("--bundle", metavar="DIR", help="write DIR/manifest.json and DIR/start.json, run nothing")
    return parser.parse_args(argv)


def stand_in(url: str) -> Any:
    """A provider twin that navigates to ``url``, snapshots, and reports what it saw."""
    from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn

    def results(body: dict[str, Any]) -> list[str]:
        out = []
        for m in body.get("messages") or []:
            for b in m.get("content") if isinstance(m.get("content"), list) else []:
                if b.get("type") == "tool_result":
                    c = b.get("content")
                    out.append("".join(x.get("text", "") for x in c) if isinstance(c, list) else str(c))
        return out

    def reply(request: Any) -> ModelTurn:
        seen = results(request.body)
        if not seen:
            return ModelTurn(tool_calls=[ScriptedCall("browser_navigate", json.dumps({"url": url}), id="toolu_1")])
        if len(seen) == 1:
            return ModelTurn(tool_calls=[ScriptedCall("browser_snapshot", "{}", id="toolu_2")])
        title = re.search(r"^title: (.*)$", seen[-1], re.M)
        lines = [line.strip() for line in seen[-1].splitlines() if line.strip().startswith("- ")][:5]
        return ModelTurn(text=f"The page is titled {title.group(1) if title else '(none)'!r}; it shows:\n"
                              + "\n".join(lines) + "\n(This answer comes from the offline stand-in model.)")

    twin = ProviderTwin("anthropic", api_key=STAND_IN_KEY)
    twin.repeat(Turn(reply))
    return twin.start()


async def drive(address: str, token: str, doc: dict[str, Any], start: dict[str, Any]) -> bool:
    from aos.kernel.client import Connection
    from aos.kernel.world.records import record_from_value

    async with await Connection.open(address) as conn:
        worlds = await (await conn.restore_kernel(token)).worlds("default")
        world, _ = await worlds.create(doc, {}, "web-agent", "web agent")
        ended: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        answer: list[str] = []

        async def on_record(seq: int, value: dict[str, Any]) -> None:
            value.pop("at", None)
            for event in transcript([record_from_value(value)]):
                print(event.describe(160), flush=True)
                if event.session == "main" and event.kind == "assistant_text_end":
                    answer[:] = [str(event.data.get("text") or "")]
                if event.session == "main" and event.kind in ("processing_end", "session_end") and not ended.done():
                    ended.set_result(event.kind == "processing_end" and event.data.get("reason") == "completed")

        subscription = await world.tail(0, on_record)
        await world.send(COMMAND, start)
        try:
            ok = await ended
        finally:
            await subscription.cancel()
    print("\nanswer:\n" + (answer[0] if answer else "(no answer)"), flush=True)
    return ok


def main(argv: list[str]) -> int:
    from aos.kernel.client import run
    from aos.kernel.process import KernelProcess

    args = parse_args(argv)
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        print(f"web-agent: not an http(s) url: {args.url}", file=sys.stderr)
        return 2
    origins = args.origin or [f"{parts.scheme}://{parts.netloc}"]
    provider = "anthropic" if args.offline else args.provider
    doc, start = build_web_agent(origins, args.task or TASK.format(url=args.url), provider=provider, model=args.model)
    if args.bundle:
        out = Path(args.bundle)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
        (out / "start.json").write_text(json.dumps(start) + "\n")
        print(f"wrote {out / 'manifest.json'} and {out / 'start.json'}")
        return 0
    twin = stand_in(args.url) if args.offline else None
    env = dict(os.environ)
    if twin is not None:
        env.update({"ANTHROPIC_BASE_URL": twin.base_url, "ANTHROPIC_API_KEY": STAND_IN_KEY})
    print(f"web agent: {provider} {start['config']['model']} on {', '.join(origins)}"
          f"{' (offline stand-in model)' if twin else ''}", flush=True)
    with tempfile.TemporaryDirectory(prefix="aos-web-", dir="/tmp") as data:
        kernel = KernelProcess(data, extra_args=["--health", ""], env=env).start()
        try:
            ok = run(drive(kernel.address, kernel.admin_token, doc, start))
        finally:
            kernel.stop()
            if twin is not None:
                twin.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
