"""Crash durability of a coding-agent session: SIGKILL the kernel mid-session, restart it on the
same data directory, and the session resumes from its journal without repeating a completed tool call.

The scripted model runs ``STEPS`` shell commands one after another, each appending one line to
``calls.log`` (so every execution is visible on disk), then ends with a text. A tool call is
*completed* once its receipt is journaled; the restarted kernel re-issues only open intents (same
intent, same idempotency key), so completed calls never run again. What was in flight at the kill
has no receipt and may run again: an LLM request (the twin sees it twice) or a tool command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

import pytest
from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn
from aos.agents import COMMAND, build_world, coding_agent, transcript
from aos.kernel.client import Connection
from aos.kernel.client import run as run_client
from aos.kernel.world import decode_record
from aos.kernel.world.records import EffectIntentRecord, ReceiptRecord

from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import wait_for

PROVIDER = "anthropic"
KEY = "sk-test-agent-crash-SECRET"
UNIVERSE = "agents"
SESSION_ID = "crash1"
STEPS = 4
KILL_AFTER = 2  # tool calls completed before the kill
FINAL = "All steps done."
LLM_EFFECT = "sys/llm.generate@1"
# step 3 when it is the one in flight at the kill: it records its pid, then waits for a file the test creates
BLOCKING = ("echo $$ > step3.pid; echo step-3-begin >> calls.log; "
            "while [ ! -e step3.release ]; do sleep 0.02; done; echo step-3 >> calls.log")
ENDS = ("processing_end", "error", "turn_limit", "loop_detection", "session_end")


def tool_results(body: dict[str, Any]) -> int:
    """How many tool results an Anthropic request carries: the number of completed steps."""
    return sum(1 for message in body.get("messages") or [] if isinstance(message.get("content"), list)
               for block in message["content"] if block.get("type") == "tool_result")


class Model:
    """Step ``n+1`` after ``n`` tool results, so a re-sent request gets the same reply. With
    ``hold``, the first request after ``KILL_AFTER`` results is held until ``release`` is set;
    with ``block``, step 3 is ``BLOCKING``."""

    def __init__(self, hold: bool = False, block: bool = False) -> None:
        self.hold, self.block = hold, block
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: Any) -> ModelTurn:
        done = tool_results(request.body)
        if self.hold and done == KILL_AFTER and not self.reached.is_set():
            self.reached.set()
            self.release.wait(60)  # blocks the twin until the kernel that sent this is dead
        if done < STEPS:
            step = done + 1
            command = BLOCKING if self.block and step == 3 else f"echo step-{step} >> calls.log"
            return ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": command}), id=f"call_{step}")])
        return ModelTurn(text=FINAL)


@pytest.fixture
def repo(tmp_path):
    """A small git repository the agent works in."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("crash test fixture\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(root)]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "fixture"], check=True)
    return root


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().rpartition(")")[2].split()[0] != "Z"


async def _journal(kernel: KernelProcess) -> list[Any]:
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        world = await (await admin.worlds(UNIVERSE)).open(SESSION_ID)
        records, next_seq = await world.read_raw(0, 0)
        while len(records) < next_seq:
            more, next_seq = await world.read_raw(len(records), 0)
            records += more
        return [decode_record(raw) for raw in records]


async def _missing_history_blobs(kernel: KernelProcess, records: list[Any]) -> list[str]:
    """The history blobs that LLM intents with an ok receipt carried inline but the CAS lacks
    (they are stored in the receipt's own journal write, so they must survive a kill with it)."""
    ok = {r.intent_hash for r in records if isinstance(r, ReceiptRecord) and r.status == "ok"}
    refs = [ref for r in records if isinstance(r, EffectIntentRecord) and r.effect == LLM_EFFECT
            and r.intent_hash in ok for ref in (r.params.get("blobs") or {})]
    assert refs, "no LLM intent carried history blobs"
    async with await Connection.open(kernel.address) as conn:
        cas = await (await conn.restore_kernel(kernel.admin_token)).cas(UNIVERSE)
        return [ref for ref in refs if not await cas.has(ref)]


def _ended(records: list[Any]) -> str | None:
    return next((e.kind for e in transcript(records, "main") if e.kind in ENDS), None)


class Crash:
    """A twin, a kernel granted the repo, and the session world ``SESSION_ID`` started in it."""

    def __init__(self, repo, data: str, model: Model) -> None:
        self.repo, self.model = repo, model
        self.twin = ProviderTwin(PROVIDER, api_key=KEY).start()
        self.twin.repeat(Turn(model))
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        env.update({"ANTHROPIC_BASE_URL": self.twin.base_url, "ANTHROPIC_API_KEY": KEY})
        self.kernel = KernelProcess(data, extra_args=["--grant-host", str(repo), "--health", ""], env=env).start()

        async def create() -> None:
            async with await Connection.open(self.kernel.address) as conn:
                admin = await conn.restore_kernel(self.kernel.admin_token)
                doc, start = build_world(coding_agent(PROVIDER), repo, PROVIDER, None, session="main",
                                         task="run the steps")
                world, _ = await (await admin.worlds(UNIVERSE)).create(doc, {}, SESSION_ID, "crash test")
                await world.send(COMMAND, start)

        run_client(create())

    def restart_and_finish(self) -> list[Any]:
        """Restart on the same data dir (the kernel wakes the mid-session world by itself) and
        wait, through a fresh connection, for the session to end; its whole journal."""
        self.kernel.start()

        async def ended() -> list[Any] | None:
            records = await _journal(self.kernel)
            return records if _ended(records) else None

        return run_client(wait_for(ended, timeout=60, interval=0.1))

    def close(self) -> None:
        self.model.release.set()
        self.kernel.kill()
        self.twin.stop()


def check_journal(records: list[Any]) -> None:
    """The session ended well, made STEPS shell calls, and every intent has exactly one receipt."""
    assert _ended(records) == "processing_end", [e.describe() for e in transcript(records)][-10:]
    events = transcript(records, "main")
    assert sum(1 for e in events if e.kind == "tool_call_start") == STEPS
    assert [e.data.get("text") for e in events if e.kind == "assistant_text_end"][-1] == FINAL
    intents = [r for r in records if isinstance(r, EffectIntentRecord)]
    receipts = Counter(r.intent_hash for r in records if isinstance(r, ReceiptRecord))
    assert len({i.intent_hash for i in intents}) == len(intents)  # nothing re-journaled as a new intent
    assert dict(receipts) == {i.intent_hash: 1 for i in intents}
    assert [i.effect for i in intents if i.effect != LLM_EFFECT] == ["sys/host.exec@1"] * STEPS
    assert sum(1 for i in intents if i.effect == LLM_EFFECT) == STEPS + 1


def test_kill_mid_session_resumes_without_repeating_tool_calls(repo):
    """A session SIGKILLed after two completed shell calls (an LLM call in flight) finishes after restart with each call run exactly once."""
    model = Model(hold=True)
    log = repo / "calls.log"
    with tempfile.TemporaryDirectory(prefix="aosac-", dir="/tmp") as data:  # short: unix socket path
        crash = Crash(repo, data, model)
        try:
            assert model.reached.wait(60), f"the model never saw {KILL_AFTER} tool results"
            assert lines(log) == [f"step-{i}" for i in range(1, KILL_AFTER + 1)]
            crash.kernel.kill()
            model.release.set()  # the held reply goes to a dead socket
            requests_at_kill = len(crash.twin.requests)
            records = crash.restart_and_finish()
            assert run_client(_missing_history_blobs(crash.kernel, records)) == []
        finally:
            crash.close()

    assert crash.twin.failures == []
    check_journal(records)
    assert lines(log) == [f"step-{i}" for i in range(1, STEPS + 1)]  # no completed tool call repeated
    # the twin: one request per model turn, plus the one in flight at the kill, re-sent once after restart
    assert requests_at_kill == KILL_AFTER + 1
    seen = Counter(tool_results(r.body) for r in crash.twin.requests)
    assert seen == {n: (2 if n == KILL_AFTER else 1) for n in range(STEPS + 1)}, seen


def _kill_during_step3(repo, data: str) -> tuple[Crash, int]:
    """Start a session whose step 3 blocks, and SIGKILL the kernel while it runs; the step's shell pid."""
    crash = Crash(repo, data, Model(block=True))
    pid_file = repo / "step3.pid"

    async def started() -> bool:
        return "step-3-begin" in lines(repo / "calls.log") and pid_file.exists() and bool(pid_file.read_text().strip())

    try:
        run_client(wait_for(started, timeout=60))
        pid = int(pid_file.read_text())
    except BaseException:
        crash.close()  # the caller's cleanup never gets this crash: a failed start must not leak its kernel
        raise
    crash.kernel.kill()
    return crash, pid


def test_kill_during_a_tool_call_reruns_only_that_call(repo):
    """A shell call in flight at the SIGKILL has no receipt, so it runs again after restart; the completed ones do not."""
    log = repo / "calls.log"
    with tempfile.TemporaryDirectory(prefix="aosac-", dir="/tmp") as data:
        crash, pid = _kill_during_step3(repo, data)
        try:
            if alive(pid):  # the crashed kernel's command may outlive it (see the next test): end it here
                os.killpg(pid, signal.SIGKILL)
            (repo / "step3.release").touch()
            records = crash.restart_and_finish()
        finally:
            crash.close()

    assert crash.twin.failures == []
    check_journal(records)
    assert lines(log) == ["step-1", "step-2", "step-3-begin", "step-3-begin", "step-3", "step-4"]
    assert Counter(tool_results(r.body) for r in crash.twin.requests) == {n: 1 for n in range(STEPS + 1)}


def test_a_killed_kernels_tool_command_does_not_outlive_it(repo):
    """The shell command of a tool call in flight at a kernel SIGKILL is gone within 5 s, before the restart could re-run it."""
    with tempfile.TemporaryDirectory(prefix="aosac-", dir="/tmp") as data:
        crash, pid = _kill_during_step3(repo, data)
        try:
            deadline = time.monotonic() + 5
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            orphaned = alive(pid)
        finally:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
            crash.close()
    assert not orphaned, f"pid {pid} (host.exec of the killed kernel) still runs"
