"""A factory job's wall time and overhead per task, against running the same tasks with ``aos agent run``.

The job is the two-task job of ``tests/factory`` (create ``mul.py``, create ``sub.py``; three scenarios,
one a hold-out) on a fixture repository, against one provider twin whose reactive model plays every
role: each worker session is two LLM calls (write the file, say done), as is each baseline run.

- ``factory.job.parallel``: ``aos factory run`` with two workers: kernel start, planning (one LLM
  call), two workers at once, the judge (baseline, each change, the final check: every scenario run
  each time, plus an LLM judgement), kernel stop;
- ``factory.job.serial``: the same with one worker (the tasks one after another);
- ``agent.run.sequential`` (the baseline): ``aos agent run`` once per task, one after the other, each
  with the task's prompt, each starting and stopping its own kernel: what a person would do by hand,
  with no planning and no checking.

``factory.overhead_per_task`` is (serial factory - sequential agent runs) / tasks: what the planning,
judging, governing and remembering cost per task. Rounds alternate factory and baseline so a busy
machine slows both alike (and the two factory runs swap places each round). Run with
``.venv/bin/python -m pytest bench/bench_factory.py -q``; ``AOS_BENCH_SCALE=3`` runs three rounds (medians).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from benchlib import Figures, Target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "factory"))
from factorykit import PLAN, Factory, FactoryModel, aos, make_repo, write_job  # noqa: E402

ROUNDS = max(1, int(float(os.environ.get("AOS_BENCH_SCALE", "1"))))


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    done = fn()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return time.perf_counter() - t


@pytest.mark.timeout(1200)
def test_factory_job_vs_agent_runs(benchmark: Any, figures: Figures) -> None:
    out: dict[str, list[float]] = {"parallel": [], "serial": [], "agents": []}

    def one_round(i: int) -> None:
        with tempfile.TemporaryDirectory(prefix="aosbf-", dir="/tmp") as tmp:
            root = Path(tmp)
            factory = Factory(root, FactoryModel())
            try:
                runs = [(2, "parallel"), (1, "serial")]
                for workers, key in runs if i % 2 == 0 else runs[::-1]:  # who goes first alternates
                    sub = root / key
                    sub.mkdir()
                    repo = make_repo(sub)
                    job = write_job(sub, repo, {"parallel_workers": workers})
                    out[key].append(_timed(lambda: factory.run(job, "--id", f"{key}{i}")))
                repo = make_repo(root / "agents")
                env = {**factory.env, "AOS_AGENT_DATA": str(root / "agent-data")}
                start = time.perf_counter()
                for t in PLAN["tasks"]:
                    task = f"Your task ({t['id']}): {t['title']}\n{t['description']}"
                    done = aos(["agent", "run", "--repo", str(repo), "--provider", "anthropic", task], env, repo)
                    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
                out["agents"].append(time.perf_counter() - start)
                assert (repo / "mul.py").exists() and (repo / "sub.py").exists()
                assert factory.model.errors == []
            finally:
                factory.close()

    def main() -> None:
        for i in range(ROUNDS):
            one_round(i)

    benchmark.pedantic(main, rounds=1, iterations=1)
    tasks = len(PLAN["tasks"])
    agents = statistics.median(out["agents"])
    serial = statistics.median(out["serial"])
    parallel = statistics.median(out["parallel"])
    figures.record("agent.run.sequential", f"{tasks} tasks with aos agent run, one after another", agents, "s",
                   benchmark=benchmark)
    figures.record("factory.job.serial", f"the same {tasks} tasks as a factory job, 1 worker (planned, judged)",
                   serial, "s", baseline="agent.run.sequential", paired=agents, benchmark=benchmark)
    figures.record("factory.job.parallel", f"the same {tasks} tasks as a factory job, 2 workers", parallel, "s",
                   baseline="agent.run.sequential", paired=agents, target=Target("ratio", "<=", 2),
                   benchmark=benchmark)
    figures.record("factory.overhead_per_task", "factory (1 worker) minus agent runs, per task",
                   (serial - agents) / tasks, "s/task", benchmark=benchmark)
