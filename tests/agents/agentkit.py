"""Shared pieces of the kernel agent suites: a provider twin driven by a
reactive scripted model, the real ``aos agent run`` CLI against it, and the
transcript read back with ``aos agent replay --json``.

A scripted model is a list of steps. Each step is a function of what the model
was just sent (``Seen``: the tool results of the request, newest last) that
returns the calls of the next response (``[call(name, **arguments), ...]``)
or a final answer (a string). Replies are computed from each real request, so
a token the model "writes" is the token it was really sent.

Each run is a separate ``aos agent run`` process with its own kernel and data
directory; about 3 s of each is the CLI's teardown after ``processing_end``
(see the report in ``docs/agents.md``), so suites launch their runs
concurrently with ``launch`` and each test waits for its own run.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aos.adapters.llm.testing import (
    ErrorReply,
    ModelTurn,
    ProviderTwin,
    ScriptedCall,
    Turn,
)

PROVIDERS = ("openai", "anthropic", "gemini")
KEY = "sk-test-agentkit-SECRET"
ENV_NAMES = {p: (f"{p.upper()}_BASE_URL", f"{p.upper()}_API_KEY") for p in PROVIDERS}


# -- what a request carries ------------------------------------------------------------------------
def tool_outputs(provider: str, body: dict) -> list[str]:
    """Every tool result in a request, oldest first, as text, in each provider's own wire shape."""
    found: list[str] = []
    if provider == "openai":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                found.append(str(item.get("output")))
    elif provider == "anthropic":
        for message in body.get("messages") or []:
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if block.get("type") == "tool_result":
                    c = block.get("content")
                    if isinstance(c, list):  # text blocks
                        c = "".join(b.get("text", "") for b in c if isinstance(b, dict))
                    found.append(c if isinstance(c, str) else json.dumps(c))
    else:
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                if "functionResponse" in part:
                    response = part["functionResponse"].get("response")
                    if isinstance(response, dict) and isinstance(response.get("result"), str):
                        found.append(response["result"])
                    else:
                        found.append(json.dumps(response))
    return found


def last_tool_output(provider: str, body: dict) -> str | None:
    """The newest tool result in a request, or None when it has none."""
    outputs = tool_outputs(provider, body)
    return outputs[-1] if outputs else None


def error_flags(provider: str, body: dict) -> list[bool]:
    """Anthropic's ``is_error`` of each tool result (the only wire that carries the flag)."""
    assert provider == "anthropic"
    return [bool(b.get("is_error")) for m in body.get("messages") or []
            for b in (m.get("content") if isinstance(m.get("content"), list) else []) if b.get("type") == "tool_result"]


# -- the scripted model ----------------------------------------------------------------------------
@dataclass
class Seen:
    """What the model was sent in one request."""

    outputs: list[str]
    body: dict

    @property
    def last(self) -> str:
        return self.outputs[-1] if self.outputs else ""

    def new(self, n: int) -> list[str]:
        """The results of the previous response's ``n`` calls, in call order."""
        return self.outputs[-n:] if n else []


Step = Callable[[Seen], "list[ScriptedCall] | ModelTurn | ErrorReply | str"]


def call(name: str, **arguments: Any) -> ScriptedCall:
    """A tool call in a scripted response (its id is assigned when it is sent)."""
    return ScriptedCall(name, json.dumps(arguments))


class ScriptedModel:
    """A responder for ``Turn``: step ``i`` answers request ``i``; requests past the script fail the run."""

    def __init__(self, provider: str, steps: list[Step | list[ScriptedCall] | str]) -> None:
        self.provider, self.steps = provider, steps
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        self._ids = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> ModelTurn:
        with self._lock:
            seen = Seen(tool_outputs(self.provider, request.body), request.body)
            self.seen.append(seen)
            i = len(self.seen) - 1
            if i >= len(self.steps):
                self.errors.append(f"request {i + 1} is past the script ({len(self.steps)} steps)")
                return ModelTurn(text="(script exhausted)")
            step = self.steps[i]
            try:
                reply = step(seen) if callable(step) else step
            except Exception as exc:  # noqa: BLE001 - an assertion in a step: report it, end the session
                self.errors.append(f"step {i + 1}: {type(exc).__name__}: {exc}")
                return ModelTurn(text=f"(step {i + 1} failed)")
            if isinstance(reply, str):
                return ModelTurn(text=reply)
            if isinstance(reply, ErrorReply):
                return reply
            turn = reply if isinstance(reply, ModelTurn) else ModelTurn(tool_calls=list(reply))
            calls = []
            for c in turn.tool_calls:
                self._ids += 1
                calls.append(ScriptedCall(c.name, c.arguments, id=c.id or f"call_{self._ids}", signature=c.signature))
            turn.tool_calls = calls
            return turn


def first_message(provider: str, body: dict) -> str:
    """The first message of a request's conversation (a session's task), as JSON text."""
    items = body.get({"openai": "input", "anthropic": "messages"}.get(provider, "contents")) or []
    return json.dumps(items[0]) if items else ""


class Router:
    """Several scripted models behind one twin: a request goes to the model whose marker is in the first message
    of its conversation (a subagent's task), else to the main session's. Looks like the main model."""

    def __init__(self, main: ScriptedModel, by_marker: dict[str, ScriptedModel]) -> None:
        self.main, self.by_marker = main, by_marker
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> Any:
        text = first_message(self.main.provider, request.body)
        with self._lock:
            target = next((m for marker, m in self.by_marker.items() if marker in text), self.main)
        return target(request)

    @property
    def seen(self) -> list[Seen]:
        return self.main.seen

    @property
    def steps(self) -> list:
        return self.main.steps

    @property
    def errors(self) -> list[str]:
        return self.main.errors + [e for m in self.by_marker.values() for e in m.errors]


# -- running the CLI -------------------------------------------------------------------------------
def cli(args: list[str], env: dict[str, str], cwd: Path | str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``aos`` and wait for it; if it hangs past ``timeout``, interrupt it like Ctrl-C would (so it stops the
    kernel it started), then kill it; the result then has returncode ``HUNG`` and whatever it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "aos.cli", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, HUNG, out, err + f"\n[agentkit: hung for {timeout} s]")


HUNG = -999


NO_LITELLM = Path(tempfile.mkdtemp(prefix="aos-no-litellm-"))
atexit.register(shutil.rmtree, NO_LITELLM, True)
(NO_LITELLM / "litellm.py").write_text("raise ImportError('litellm is hidden from agent eval runs (agentkit)')\n")


def agent_env(provider: str, base_url: str, data: Path) -> dict[str, str]:
    """The environment of a CLI run: this provider's twin and key only, a private data directory."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    base, key = ENV_NAMES[provider]
    env.update({base: base_url, key: KEY, "AOS_AGENT_DATA": str(data)})
    if not os.environ.get("AOS_AGENT_EVAL_LITELLM"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NO_LITELLM), env.get("PYTHONPATH")) if p)
    return env


@dataclass
class AgentRun:
    """One finished ``aos agent run``: the process, what the model was sent, and the journal's events."""

    provider: str
    repo: Path
    session: str
    env: dict[str, str]
    proc: subprocess.CompletedProcess
    model: Any  # ScriptedModel or Router
    twin_failures: list[str]
    _events: list[dict] | None = field(default=None, repr=False)

    @property
    def requests(self) -> list[Seen]:
        return self.model.seen

    def check(self, returncode: int = 0, requests: int | None = None) -> AgentRun:
        """The run ended with ``processing_end`` (or ``returncode``), the script was followed exactly (or for
        ``requests`` requests) and the key never leaked into the output."""
        assert self.proc.returncode == returncode, self.proc.stdout[-4000:] + self.proc.stderr[-4000:]
        assert self.twin_failures == [], self.twin_failures
        assert self.model.errors == [], self.model.errors
        expected = len(self.model.steps) if requests is None else requests
        assert len(self.model.seen) == expected, (len(self.model.seen), expected)
        assert KEY not in self.proc.stdout + self.proc.stderr
        return self

    def events(self) -> list[dict]:
        """The session's events from ``aos agent replay --json`` (the journal, no model)."""
        if self._events is None:
            replay = cli(["agent", "replay", self.session, "--repo", str(self.repo), "--json"], self.env, self.repo)
            assert replay.returncode == 0, replay.stderr
            self._events = [json.loads(line) for line in replay.stdout.splitlines() if line.strip()]
        return self._events

    def tool_ends(self, tool: str | None = None) -> list[dict]:
        """The ``data`` of each ``tool_call_end`` of the main session (of one tool, if named)."""
        return [e["data"] for e in self.events() if e["kind"] == "tool_call_end" and e["session"] == "main"
                and (tool is None or e["data"].get("tool_name") == tool)]

    def tools_called(self) -> list[str]:
        return [e["data"]["tool_name"] for e in self.events() if e["kind"] == "tool_call_start"]

    def final_text(self) -> str:
        ends = [e["data"].get("text") or "" for e in self.events() if e["kind"] == "assistant_text_end"]
        return ends[-1] if ends else ""


def run_agent(provider: str, repo: Path, steps: list, work: Path, task: str = "do the task",
              session: str = "eval", extra: Iterable[str] = (), model: Any = None) -> AgentRun:
    """Run the real CLI on ``repo`` against a twin of ``provider`` that follows ``steps`` (or ``model``)."""
    model = model or ScriptedModel(provider, steps)
    twin = ProviderTwin(provider, api_key=KEY).start()
    twin.repeat(Turn(model))
    env = agent_env(provider, twin.base_url, work / "agent-data")
    try:
        proc = cli(["agent", "run", "--repo", str(repo), "--provider", provider, "--session", session, *extra, task],
                   env, repo)
    finally:
        twin.stop()
    return AgentRun(provider, repo, session, env, proc, model, list(twin.failures))


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A temporary repository holding ``files`` (relative path -> text)."""
    repo = root / "repo"
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    repo.mkdir(parents=True, exist_ok=True)
    return repo


_POOL = ThreadPoolExecutor(max_workers=int(os.environ.get("AOS_AGENT_EVAL_JOBS", "6")), thread_name_prefix="agent-run")


def launch(fn: Callable[[], Any]) -> Future:
    """Start a run in the background; a test waits for it with ``future.result()``."""
    return _POOL.submit(fn)


def launch_selected(request: Any, tmp_path_factory: Any, names: tuple[str, str],
                    start: Callable[[str, str, Path], Any]) -> dict[tuple[str, str], Future]:
    """For a module-scoped fixture: start ``start(a, b, work)`` in the background for every selected test of
    the fixture's module parametrized with ``names`` = (a, b), once per distinct pair."""
    futures: dict[tuple[str, str], Future] = {}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if str(item.path) == str(request.path) and all(n in params for n in names):
            key = (params[names[0]], params[names[1]])
            if key not in futures:
                futures[key] = launch(partial(start, *key, tmp_path_factory.mktemp(f"{key[0]}-{key[1]}")))
    return futures
