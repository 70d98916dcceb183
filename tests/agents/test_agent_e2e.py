"""The mission's test: `aos agent run` fixes a failing test in a cloned repository, then `aos agent replay` offline."""

import json
import os
import subprocess
import sys

import pytest

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn

KEY = "sk-test-agent-e2e-SECRET"

CALC = "def add(a, b):\n    return a - b\n"
TEST = (
    "from calc import add\n"
    "if add(2, 3) == 5:\n"
    "    print('OK: add(2, 3) == 5')\n"
    "else:\n"
    "    print(f'FAIL: add(2, 3) returned {add(2, 3)}')\n"
    "    raise SystemExit(1)\n"
)
PATCH = "*** Begin Patch\n*** Update File: calc.py\n@@\n def add(a, b):\n-    return a - b\n+    return a + b\n*** End Patch\n"


def last_tool_output(provider: str, body: dict) -> str | None:
    """The newest tool result in a request, in each provider's own wire shape."""
    found = None
    if provider == "openai":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                found = str(item.get("output"))
    elif provider == "anthropic":
        for message in body.get("messages") or []:
            for block in message.get("content") if isinstance(message.get("content"), list) else []:
                if block.get("type") == "tool_result":
                    content = block.get("content")
                    found = content if isinstance(content, str) else json.dumps(content)
    else:
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                if "functionResponse" in part:
                    found = json.dumps(part["functionResponse"].get("response"))
    return found


# every run uses python -B: an edit that keeps the file's size within the same second as an
# earlier run would otherwise leave Python's bytecode cache looking fresh (stale code runs)


def reactive_model(provider: str):
    """A scripted model that decides each reply from the tool result it was just sent."""
    state = {"n": 0}

    def call(name: str, **arguments) -> ModelTurn:
        state["n"] += 1
        return ModelTurn(tool_calls=[ScriptedCall(name, json.dumps(arguments), id=f"call_{state['n']}")])

    def react(request) -> ModelTurn:
        output = last_tool_output(provider, request.body)
        if output is None:
            return call("shell", command="python3 -B test_calc.py")
        if "FAIL" in output:
            return call("read_file", file_path="calc.py")
        if "return a - b" in output:
            if provider == "openai":
                return call("apply_patch", patch=PATCH)
            return call("edit_file", file_path="calc.py", old_string="return a - b", new_string="return a + b")
        if "OK: add(2, 3) == 5" in output:
            return ModelTurn(text="Fixed add(): it subtracted instead of adding. The test passes now.")
        return call("shell", command="python3 -B test_calc.py")  # after the edit: run the tests again

    return react


@pytest.fixture
def cloned_repo(tmp_path):
    """A fixture repository with a failing test, cloned with git like a user would."""
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "calc.py").write_text(CALC)
    (origin / "test_calc.py").write_text(TEST)
    (origin / "AGENTS.md").write_text("Run the tests with: python3 -B test_calc.py\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(origin)], check=True)
    subprocess.run(git + ["-C", str(origin), "add", "."], check=True)
    subprocess.run(git + ["-C", str(origin), "commit", "-qm", "fixture"], check=True)
    clone = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    assert subprocess.run([sys.executable, "-B", "test_calc.py"], cwd=clone, capture_output=True).returncode == 1
    return clone


def aos(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
def test_agent_fixes_the_failing_test_then_replays_offline(provider, cloned_repo, tmp_path):
    """The agent runs the tests, reads the code, edits it and re-runs the tests; they pass in the clone,
    and replay prints the same transcript with the model switched off."""
    twin = ProviderTwin(provider, api_key=KEY).start()
    twin.repeat(Turn(reactive_model(provider)))
    base = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "gemini": "GEMINI_BASE_URL"}[provider]
    key = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}[provider]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.update({base: twin.base_url, key: KEY, "AOS_AGENT_DATA": str(tmp_path / "agent-data")})
    try:
        run = aos(["agent", "run", "--repo", str(cloned_repo), "--provider", provider, "--session", "fix1",
                   "make the failing test in test_calc.py pass"], env, cloned_repo)
    finally:
        twin.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert twin.failures == []
    assert subprocess.run([sys.executable, "-B", "test_calc.py"], cwd=cloned_repo, capture_output=True).returncode == 0
    assert "return a + b" in (cloned_repo / "calc.py").read_text()
    live = run.stdout.splitlines()
    assert any("tool_call_start" in line and "shell" in line for line in live)
    assert any("processing_end" in line for line in live)
    assert live[-2].startswith("processing_end (completed): 5 turn(s), 4 tool call(s)")
    assert KEY not in run.stdout + run.stderr

    # the twin is gone: replay reads the journal only
    replay = aos(["agent", "replay", "fix1", "--repo", str(cloned_repo)], env, cloned_repo)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.splitlines()[:-1] == live[1:-2]
    assert KEY not in replay.stdout
