"""`aos factory run` through a real kernel and a provider twin whose model plays every role."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from factorykit import KEY, Factory, FactoryModel, make_repo, write_job


@pytest.fixture
def factory(tmp_path):
    f = Factory(tmp_path, FactoryModel())
    yield f
    f.close()


def test_a_two_task_job_runs_to_done(factory, tmp_path):
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo)
    run = factory.run(job, "--json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "done"
    assert sorted(a["task"] for a in end["accepted"]) == ["t1", "t2"]
    assert factory.model.errors == [] and factory.twin.failures == []
    assert KEY not in run.stdout + run.stderr
    # the integrated change applies to the repository and passes every scenario
    subprocess.run(["git", "apply", end["patch"]], cwd=repo, check=True)
    assert (repo / "mul.py").exists() and (repo / "sub.py").exists()
