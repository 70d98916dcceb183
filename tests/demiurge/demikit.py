"""Shared pieces of the Demiurge suites: a kernel pointed at a provider twin, a reactive model, the real CLI.

The model is a *policy*: a function of the conversation the Demiurge sent
(``Conversation``: the task and every tool call so far with its result, read
from the Anthropic wire of each request) that returns the next tool calls or
the final answer. It decides from what the tools returned (a state it read, a
proposal id, a shadow report, compiler diagnostics, a module hash), never by
counting requests, so a tool that returned something else leads the run
elsewhere and the test's assertions on the world catch it.

Each test gets its own twin and kernel (``DemiurgeKernel``); the Demiurge runs
through ``aos demiurge`` (a subprocess, ``--json``) against that kernel.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn
from aos.testing import KernelProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from agentkit import HUNG, cli  # noqa: E402

KEY = "sk-test-demiurge-SECRET"
UNIVERSE = "u"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class ToolUse:
    name: str
    input: dict[str, Any]
    output: str | None  # None: no result yet (the call is in this request's last assistant turn)
    is_error: bool = False

    def json(self) -> Any:
        """The output parsed as JSON (the read tools answer JSON)."""
        assert self.output is not None
        return json.loads(self.output)


@dataclass
class Conversation:
    """What the Demiurge sent the model in one request."""

    task: str
    uses: list[ToolUse]
    system: str

    def last(self, name: str) -> ToolUse | None:
        return next((u for u in reversed(self.uses) if u.name == name), None)

    def all(self, name: str) -> list[ToolUse]:
        return [u for u in self.uses if u.name == name]

    @property
    def newest(self) -> ToolUse | None:
        return self.uses[-1] if self.uses else None


def conversation(body: dict[str, Any]) -> Conversation:
    """Read an Anthropic Messages request: the first user text, tool uses paired with their results."""
    messages = body.get("messages") or []
    task = ""
    uses: dict[str, ToolUse] = {}
    order: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            task = task or content
            continue
        for block in content or []:
            if block.get("type") == "text" and m.get("role") == "user":
                task = task or block.get("text", "")
            elif block.get("type") == "tool_use":
                uses[block["id"]] = ToolUse(block["name"], block.get("input") or {}, None)
                order.append(block["id"])
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in uses:
                c = block.get("content")
                if isinstance(c, list):
                    c = "".join(b.get("text", "") for b in c if isinstance(b, dict))
                u = uses[block["tool_use_id"]]
                u.output, u.is_error = (c if isinstance(c, str) else json.dumps(c)), bool(block.get("is_error"))
    system = body.get("system")
    if isinstance(system, list):
        system = "".join(b.get("text", "") for b in system if isinstance(b, dict))
    return Conversation(task, [uses[i] for i in order], str(system or ""))


Policy = Callable[[Conversation], "list[ScriptedCall] | str"]


def call(tool: str, **arguments: Any) -> ScriptedCall:
    """A tool call of the model (``name`` may be one of the arguments)."""
    return ScriptedCall(tool, json.dumps(arguments))


class Brain:
    """A reactive model: ``policy(conversation)`` answers each request; errors in it end the run and are kept."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.seen: list[Conversation] = []
        self.errors: list[str] = []
        self._ids = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> ModelTurn:
        with self._lock:
            conv = conversation(request.body or {})
            self.seen.append(conv)
            try:
                reply = self.policy(conv)
            except Exception as exc:  # noqa: BLE001 -- an assertion in the policy: keep it, end the session
                self.errors.append(f"request {len(self.seen)}: {type(exc).__name__}: {exc}")
                return ModelTurn(text=f"(policy failed: {exc})")
            if isinstance(reply, str):
                return ModelTurn(text=reply)
            calls = []
            for c in reply:
                self._ids += 1
                calls.append(ScriptedCall(c.name, c.arguments, id=f"toolu_{self._ids:04d}"))
            return ModelTurn(tool_calls=calls)


@dataclass
class Run:
    """One finished ``aos demiurge`` process and its events (``--json`` lines)."""

    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def tool_ends(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["kind"] == "tool_call_end"
                and (name is None or e["data"]["tool_name"] == name)]

    def final_text(self) -> str:
        ends = [e["data"].get("text") or "" for e in self.events if e["kind"] == "assistant_text_end"]
        return ends[-1] if ends else ""


class DemiurgeKernel:
    """A twin of the Anthropic API driven by a ``Brain``, and a kernel whose environment points at it."""

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="aosd-", dir="/tmp")
        self.brain = Brain(lambda conv: "(no policy set)")
        self.twin = ProviderTwin("anthropic", api_key=KEY).start()
        self.twin.repeat(Turn(self._reply))
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        env.update({"ANTHROPIC_BASE_URL": self.twin.base_url, "ANTHROPIC_API_KEY": KEY})
        self.kernel = KernelProcess(self.dir, extra_args=extra_args or [], env=env).start()

    def _reply(self, request: Any) -> ModelTurn:
        return self.brain(request)

    def think(self, policy: Policy) -> Brain:
        """Drive the next runs with ``policy``."""
        self.brain = Brain(policy)
        return self.brain

    def demiurge(self, world: str, task: str, *grants: str, timeout: float = 90) -> Run:
        """``aos demiurge WORLD TASK --json`` against this kernel."""
        args = ["--connect", self.kernel.address, "--token-file", self.kernel.token_path, "--universe", UNIVERSE,
                "demiurge", world, task, "--json"]
        for g in grants:
            args += ["--grant", g]
        proc = cli(args, dict(os.environ), self.dir, timeout=timeout)
        assert proc.returncode != HUNG, proc.stderr[-3000:]
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        return Run(proc.returncode, proc.stdout, proc.stderr, events)

    def aos(self, *args: str, timeout: float = 60) -> Any:
        """Any ``aos`` command against this kernel (in the test universe)."""
        return cli(["--connect", self.kernel.address, "--token-file", self.kernel.token_path, "--universe",
                    UNIVERSE, *args], dict(os.environ), self.dir, timeout=timeout)

    def close(self) -> None:
        self.kernel.kill()
        self.twin.stop()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def bundle(name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    from aos.cli_world import load_bundle_doc

    return load_bundle_doc(str(EXAMPLES / name), None)


def find(output: str, marker: str) -> str:
    """The first whitespace-free word after ``marker`` in a tool's output."""
    at = output.index(marker) + len(marker)
    return output[at:].split()[0].strip(".,:;\"'")
