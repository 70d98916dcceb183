"""Shared pieces of the factory suites: a fixture repository, job files, and one provider twin
whose reactive model plays every role of the factory (planner, workers, judge).

The model decides each reply from the request it is sent: the system prompt says which role
asks (the planner's, the judge's, or a worker session's), the first user message names the
task, and the tool results so far say how far a worker got. So the replies are computed from
what the worlds really sent, and a worker that was told about a hold-out failure really got
that feedback in its prompt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn

KEY = "sk-test-factory-SECRET"
PROVIDER = "anthropic"

CALC = "def add(a, b):\n    return a + b\n"
MUL = "def mul(a, b):\n    return a * b\n"
SUB = "def sub(a, b):\n    return a - b\n"
PLAN = {"tasks": [{"id": "t1", "title": "add mul", "description": "Create mul.py with mul(a, b) returning a * b."},
                  {"id": "t2", "title": "add sub", "description": "Create sub.py with sub(a, b) returning a - b."}]}


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["-C", str(repo), "add", "."], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-qm", "fixture"], check=True)
    return repo


def py(code: str) -> str:
    return f"python3 -B -c {json.dumps(code)}"


SCENARIOS = [
    {"name": "add still adds", "run": py("from calc import add; assert add(2, 3) == 5"), "holdout": True,
     "description": "add() must keep adding"},
    {"name": "mul multiplies", "run": py("from mul import mul; print(mul(2, 3))"), "expect_stdout": "6"},
    {"name": "sub subtracts", "run": py("from sub import sub; assert sub(5, 3) == 2")},
]


def write_job(root: Path, repo: Path, budget: dict[str, Any] | None = None, scenarios: list | None = None,
              name: str = "calc", policy: str = "") -> Path:
    b = {"tokens": 100000, "cost_usd": 5.0, "wall_time_s": 600, "parallel_workers": 2, "max_attempts": 3,
         **(budget or {})}
    lines = ["[job]", 'intent = "Add mul() and sub() next to calc.add()"', 'constraints = ["standard library only"]',
             f"repository = {json.dumps(str(repo))}", f'provider = "{PROVIDER}"', "", "[budget]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in b.items()]
    if policy:
        lines += ["", "[policy]", policy]
    for s in scenarios or SCENARIOS:
        lines += ["", "[[scenario]]"] + [f"{k} = {json.dumps(v)}" for k, v in s.items()]
    path = root / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the model ----------------------------------------------------------------------------------------
def _system(body: dict) -> str:
    s = body.get("system")
    if isinstance(s, list):
        return "".join(b.get("text", "") for b in s if isinstance(b, dict))
    return str(s or "")


def _first_user(body: dict) -> str:
    for m in body.get("messages") or []:
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else "".join(b.get("text", "") for b in c if isinstance(b, dict))
    return ""


def _tool_results(body: dict) -> list[str]:
    out = []
    for m in body.get("messages") or []:
        c = m.get("content")
        for b in c if isinstance(c, list) else []:
            if b.get("type") == "tool_result":
                x = b.get("content")
                out.append(x if isinstance(x, str) else json.dumps(x))
    return out


def call(name: str, **arguments: Any) -> ScriptedCall:
    return ScriptedCall(name, json.dumps(arguments))


Worker = Callable[[str, str, list[str]], "ModelTurn"]  # (task id, prompt, tool results) -> reply


def honest_worker(task: str, prompt: str, results: list[str]) -> ModelTurn:
    """Writes the task's file, then says it is done."""
    if not results:
        name, text = ("mul.py", MUL) if task == "t1" else ("sub.py", SUB)
        return ModelTurn(tool_calls=[call("write_file", file_path=name, content=text)])
    return ModelTurn(text=f"Done: {task}.")


class FactoryModel:
    """Every role of the factory behind one twin; counts what each role was asked."""

    def __init__(self, worker: Worker = honest_worker, plan: dict | None = None) -> None:
        self.worker, self.plan = worker, plan or PLAN
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {"plan": 0, "replan": 0, "judge": 0, "worker": 0}
        self.prompts: list[str] = []
        self.errors: list[str] = []

    def __call__(self, request: Any) -> ModelTurn:
        body = request.body
        system, first = _system(body), _first_user(body)
        with self.lock:
            try:
                if "planner of a software factory. Break" in system:
                    self.calls["plan"] += 1
                    return ModelTurn(text=json.dumps(self.plan))
                if "planner of a software factory. A task failed" in system:
                    self.calls["replan"] += 1
                    tid = first.split("Task ", 1)[1].split(":", 1)[0]
                    return ModelTurn(text=json.dumps({"tasks": [
                        {"id": tid, "title": "redo " + tid, "description": "Do it again, heeding the feedback."}]}))
                if "You judge the work" in system:
                    self.calls["judge"] += 1
                    return ModelTurn(text='{"satisfaction": 100, "reason": "looks right"}')
                self.calls["worker"] += 1
                self.prompts.append(first)
                task = first.split("Your task (", 1)[1].split(")", 1)[0]
                return self.worker(task, first, _tool_results(body))
            except Exception as exc:  # noqa: BLE001 - a bad request: report it, end that session
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return ModelTurn(text="(the test model failed)")


def factory_env(twin: ProviderTwin, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.update({"ANTHROPIC_BASE_URL": twin.base_url, "ANTHROPIC_API_KEY": KEY, "AOS_FACTORY_DATA": str(data)})
    return env


def aos(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


class Factory:
    """A twin with a ``FactoryModel`` and a data directory: ``run(job)`` is ``aos factory run``."""

    def __init__(self, tmp: Path, model: FactoryModel) -> None:
        self.tmp, self.model = tmp, model
        self.twin = ProviderTwin(PROVIDER, api_key=KEY).start()
        self.twin.repeat(Turn(model))
        self.data = tmp / "data"
        self.env = factory_env(self.twin, self.data)

    def run(self, job: Path, *extra: str) -> subprocess.CompletedProcess:
        return aos(["factory", "run", str(job), *extra], self.env, self.tmp)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return aos(list(args), self.env, self.tmp)

    def close(self) -> None:
        self.twin.stop()
