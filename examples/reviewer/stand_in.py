"""A stand-in model for trying an agent offline: no API key, nothing leaves 127.0.0.1.

It is a provider twin (``aos.adapters.llm.testing.ProviderTwin``, the fake the
test suite uses) that speaks the real Anthropic Messages wire and answers
like a small, dull model that reacts to what it is sent:

1. it searches: ``grep`` for ``TODO|FIXME`` if the agent has grep, else
   ``glob`` for ``**/*.py``;
2. it reads the first file that search named, with ``read_file``;
3. it answers with what it saw, saying plainly that it is a stand-in.

The kernel, the world, the grants and the tools are all real: the files are
really read, through the world's read-only grant. Only the model is scripted.

Run it on its own to point any agent at it::

    .venv/bin/python examples/reviewer/stand_in.py
    # prints the two variables to export, then serves until Ctrl-C

``examples/reviewer/agent.py --offline`` starts it in-process instead.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from typing import Any

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn, TwinRequest

KEY = "stand-in-key-not-secret"


def _tool_results(body: dict[str, Any]) -> list[str]:
    out = []
    for message in body.get("messages") or []:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                c = block.get("content")
                if isinstance(c, list):
                    c = "".join(b.get("text", "") for b in c if isinstance(b, dict))
                out.append(c if isinstance(c, str) else json.dumps(c))
    return out


def _first_path(search_output: str) -> str | None:
    """The first file a grep (``path:line:text``) or glob (one path per line) result names."""
    for line in search_output.splitlines():
        line = line.strip()
        if not line or line.startswith(("No ", "Error")):
            continue
        match = re.match(r"(.+?):\d+:", line)
        return match.group(1) if match else line
    return None


class StandInModel:
    """The responder: each reply is a function of the request alone, so sessions may interleave."""

    def __init__(self) -> None:
        self.calls = 0  # for call ids only

    def __call__(self, request: TwinRequest) -> ModelTurn:
        body = request.body
        tools = {t.get("name") for t in body.get("tools") or []}
        results = _tool_results(body)
        path = _first_path(results[0]) if results else None
        self.calls += 1
        if not results:
            if "grep" in tools:
                return ModelTurn(tool_calls=[ScriptedCall("grep", json.dumps({"pattern": "TODO|FIXME"}),
                                                          id=f"toolu_{self.calls}")])
            return ModelTurn(tool_calls=[ScriptedCall("glob", json.dumps({"pattern": "**/*.py"}),
                                                      id=f"toolu_{self.calls}")])
        if len(results) == 1 and path and "read_file" in tools:
            return ModelTurn(tool_calls=[ScriptedCall("read_file", json.dumps({"file_path": path}),
                                                      id=f"toolu_{self.calls}")])
        lines = len(results[-1].splitlines()) if len(results) > 1 else 0
        seen = f"I searched the repository and read {path} ({lines} lines)." if path and lines else \
            "I searched the repository and found nothing to read."
        return ModelTurn(text=f"{seen} This answer comes from the offline stand-in model, not a real one: "
                              "export a provider key and run without --offline for a real answer.")


def start() -> ProviderTwin:
    """A running stand-in; point the kernel at it with ``env(twin)``."""
    twin = ProviderTwin("anthropic", api_key=KEY)
    twin.record = False  # it may serve many sessions; keep no history
    twin.repeat(Turn(StandInModel()))
    return twin.start()


def env(twin: ProviderTwin) -> dict[str, str]:
    """The variables that send a kernel's ``llm.generate`` effects to the stand-in."""
    return {"ANTHROPIC_BASE_URL": twin.base_url, "ANTHROPIC_API_KEY": KEY}


def main() -> int:
    twin = start()
    for name, value in env(twin).items():
        print(f"export {name}={value}")
    sys.stdout.flush()  # before the message: whoever waits for it may read the variables at once
    print("# the stand-in model is serving; start aos-kernel (or your agent) with these set. Ctrl-C stops it.",
          file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        twin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
