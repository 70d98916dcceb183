"""Stopping ``aos agent run`` any way cleans up: its per-repository kernel and the agent's commands are gone.

SIGTERM (what ``timeout`` and service managers send) and SIGINT (Ctrl-C)
abort the session, so the kernel kills the command the agent is running
and the journal ends with the abort; then the kernel stops. SIGKILL leaves
no chance to clean up, so the kernel watches its parent and stops by itself.
While a run holds a repository, a second run says so in one line.

The agent's model is a provider twin on 127.0.0.1 scripted to run a long
shell command; the test finds that command and the kernel through /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall

KEY = "sk-test-agent-signals-0123456789"


def _processes(needle: str) -> list[int]:
    """Live processes whose command line contains ``needle``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(int(name))
    return found


def _wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def busy_agent(tmp_path):
    """Start `aos agent run` whose model runs a long command; yields (process, repo, env, the command's tag)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    marker = repo / "started"
    tag = f"sleep {400 + os.getpid() % 97}.{time.monotonic_ns() % 1000:03d}"  # unique on this machine
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    command = f"touch {marker}; {tag}; echo finished"
    twin.repeat(ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": command}), id="c1")]))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("AOS_")}
    env.update(ANTHROPIC_BASE_URL=twin.base_url, ANTHROPIC_API_KEY=KEY, AOS_AGENT_DATA=str(tmp_path / "agent-data"))
    proc = subprocess.Popen([sys.executable, "-m", "aos.cli", "agent", "run", "--repo", str(repo), "--session", "s1",
                             "do something slow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_until(marker.exists, 60), "the agent's command never started"
        assert _processes(tag) and _processes(str(tmp_path / "agent-data"))
        yield proc, repo, env, tag
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
        twin.stop()
        for pid in _processes(tag) + _processes(str(tmp_path / "agent-data")):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_aborts_the_session_and_stops_everything(busy_agent, tmp_path, sig, status):
    """SIGTERM or SIGINT: exit 143/130 saying the session was aborted; no kernel and no agent command is left,
    and the journal ends with the abort."""
    proc, repo, env, tag = busy_agent
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.splitlines()[-1] == "aos: interrupted: the session was aborted"
    assert "Traceback" not in err
    assert _wait_until(lambda: not _processes(tag), 10), "the agent's command is still running"
    assert not _processes(str(tmp_path / "agent-data")), "the repository's kernel is still running"
    replay = subprocess.run([sys.executable, "-m", "aos.cli", "agent", "replay", "s1", "--repo", str(repo)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    assert "session_end pending=['2:0'] reason=aborted" in replay.stdout


def test_sigkill_leaves_no_kernel_behind(busy_agent, tmp_path):
    """SIGKILL gives no chance to clean up: the kernel notices its parent is gone and stops (and with it the
    agent's command), instead of living on under PID 1."""
    proc, _, _, tag = busy_agent
    proc.kill()
    proc.wait(30)
    assert _wait_until(lambda: not _processes(str(tmp_path / "agent-data")), 30), "the kernel outlived its run"
    assert _wait_until(lambda: not _processes(tag), 10), "the agent's command outlived the kernel"


def test_a_second_run_on_a_busy_repository_is_one_line(busy_agent, tmp_path):
    """While a run holds the repository, another `aos agent run` there exits 1 naming the first run's pid."""
    proc, repo, env, _ = busy_agent
    (kernel_pid,) = _processes(str(tmp_path / "agent-data"))
    second = subprocess.run([sys.executable, "-m", "aos.cli", "agent", "run", "--repo", str(repo), "again"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"aos: RepositoryInUse: another run is using this repository, pid {proc.pid} (its kernel: pid {kernel_pid})"]
    assert proc.poll() is None  # the first run goes on
