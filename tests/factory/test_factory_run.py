"""`aos factory run` through a real kernel and a provider twin whose model plays every role:
a two-task job runs to done, is explained from its journals and replays byte for byte; a worker
that breaks a hold-out scenario is sent back and fixes it; a governor budget stops a runaway job."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from factorykit import (  # noqa: E402
    KEY, MUL, SCENARIOS, Factory, FactoryModel, ModelTurn, call, honest_worker, make_repo, write_job,
)

from aos.kernel.client import Connection, run  # noqa: E402
from aos.kernel.host.offline import read_world  # noqa: E402
from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay  # noqa: E402
from aos.testing import KernelProcess  # noqa: E402


@pytest.fixture
def factory(tmp_path, request):
    f = Factory(tmp_path, getattr(request, "param", None) or FactoryModel())
    yield f
    f.close()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_two_task_job_runs_to_done_explains_and_replays(factory, tmp_path):
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo)
    done = factory.run(job, "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = json_lines(done.stdout)
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "done"
    assert sorted(a["task"] for a in end["accepted"]) == ["t1", "t2"]
    assert factory.model.errors == [] and factory.twin.failures == []
    assert factory.model.calls["plan"] == 1 and factory.model.calls["replan"] == 0
    assert KEY not in done.stdout + done.stderr
    kinds = [(e["role"], e["kind"]) for e in events[:-1]]
    assert kinds.count(("worker", "change")) == 2 and ("judge", "judgment") in kinds
    # workers never saw the hold-out's command
    assert all("assert add(2, 3) == 5" not in p for p in factory.model.prompts)

    # the integrated change applies to the repository and passes every scenario there
    subprocess.run(["git", "apply", end["patch"]], cwd=repo, check=True)
    for s in SCENARIOS:
        assert subprocess.run(s["run"], shell=True, cwd=repo, capture_output=True).returncode == 0, s["name"]

    # the journals alone tell the story (each world replayed first)
    explain = factory.cli("factory", "explain", "calc")
    assert explain.returncode == 0, explain.stderr
    text = explain.stdout
    assert text.startswith("job calc: done")
    assert "plan: t1 'add mul'" in text and "plan: t2 'add sub'" in text
    assert "final check ACCEPTED (3/3 scenarios pass" in text and "transcript: session t1-a1" in text
    status = factory.cli("factory", "status", "calc", "--json")
    assert json.loads(status.stdout)["status"] == "done"
    listing = factory.cli("factory", "ls")
    assert listing.stdout.startswith("calc\tdone")
    listed = json.loads(factory.cli("factory", "ls", "--json").stdout)
    assert [j["job"] for j in listed["jobs"]] == ["calc"]
    explained = factory.cli("factory", "explain", "calc", "--json")
    assert explained.returncode == 0 and json.loads(explained.stdout)

    # replay: every world of the job, from genesis, derives its journal byte for byte and ends in the state
    # the kernel holds
    data = str(factory.data)
    ids = [w for w in json.load(open(os.path.join(data, "jobs", "calc", "job.json")))["worlds"].values()]
    fresh = {}
    for wid in ids:
        offline = read_world(data, "factory", wid)
        manifest = parse_manifest(offline.manifest)
        world = World(manifest, load_runtimes(manifest, {}), wid)
        assert replay(world, [decode_record(r) for r in offline.records]) == ()
        fresh[wid] = world.state_hash()
    kernel = KernelProcess(data, extra_args=["--grant-host", os.path.join(data, "jobs")]).start()
    try:
        async def live() -> dict:
            async with await Connection.open(kernel.address) as conn:
                worlds = await (await conn.restore_kernel(kernel.admin_token)).worlds("factory")
                return {wid: (await (await worlds.open(wid)).snapshot())[0] for wid in ids}

        assert run(live()) == fresh
    finally:
        kernel.stop()


def holdout_breaker(task, prompt, results):
    """The first attempt at t1 'simplifies' calc.add while adding mul; told a hold-out broke, it leaves add alone."""
    if "Earlier attempts were rejected" in prompt or task != "t1":
        return honest_worker(task, prompt, results)
    if not results:
        return ModelTurn(tool_calls=[call("write_file", file_path="mul.py", content=MUL),
                                     call("edit_file", file_path="calc.py", old_string="return a + b",
                                          new_string="return a * b")])
    return ModelTurn(text="Added mul and tidied add.")


ONE_TASK = {"tasks": [{"id": "t1", "title": "add mul", "description": "Create mul.py with mul(a, b) = a * b."}]}


@pytest.mark.parametrize("factory", [FactoryModel(holdout_breaker, ONE_TASK)], indirect=True)
def test_a_worker_that_breaks_a_holdout_is_sent_back_and_fixes_it(factory, tmp_path):
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo, {"parallel_workers": 1}, SCENARIOS[:2])
    done = factory.run(job)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert factory.model.errors == [] and factory.model.calls["replan"] == 1
    out = done.stdout
    assert "t1 attempt 1 REJECTED" in out and "t1 attempt 2 ACCEPTED" in out
    # the feedback named the hold-out by its description, never by its command or expectation
    retry = next(p for p in factory.model.prompts if "Earlier attempts were rejected" in p)
    assert "hold-out scenario 'add still adds' fails: add() must keep adding" in retry
    assert "assert add(2, 3) == 5" not in retry
    # and memory gave it what the first attempt did and how it was judged
    notes = retry.split("Notes from memory:", 1)[1]
    assert "t1 attempt 1: Added mul and tidied add." in notes and "t1 attempt 1 rejected" in notes
    subprocess.run(["git", "apply", os.path.join(factory.data, "jobs", "calc", "result.patch")], cwd=repo, check=True)
    assert (repo / "calc.py").read_text().endswith("return a + b\n")
    explain = factory.cli("factory", "explain", "calc").stdout
    assert "FAIL add still adds (hold-out): exit 1" in explain and "re-plan t1: 'redo t1'" in explain


def runaway(task, prompt, results):
    """A worker that never stops running commands."""
    return ModelTurn(tool_calls=[call("shell", command=f"echo round {len(results)}")])


@pytest.mark.parametrize("factory", [FactoryModel(runaway, ONE_TASK)], indirect=True)
def test_a_governor_budget_stops_a_runaway_job(factory, tmp_path):
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo, {"parallel_workers": 1, "tokens": 150}, SCENARIOS[:2])
    stopped = factory.run(job)
    assert stopped.returncode == 3, stopped.stdout[-3000:] + stopped.stderr[-3000:]
    assert "aos: job calc stopped: budget exceeded: tokens: 165 used, the budget is 150" in stopped.stderr
    assert "governor: STOP, budget exceeded" in stopped.stdout
    # 15 tokens a call: the planner's, then ten of the worker's pass 150; the worker's next call may already be
    # on its way when the abort arrives (it is answered, then the session ends)
    assert factory.model.calls["worker"] in (10, 11)
    explain = factory.cli("factory", "explain", "calc").stdout
    assert explain.startswith("job calc: stopped (budget exceeded: tokens")
    assert "t1 attempt 1: aborted in calc.worker-1" in explain



def test_a_job_runs_on_a_kernel_it_connects_to(factory, tmp_path):
    """--connect: the worlds live on a kernel someone else started (granting the clones' directory, with the
    provider's key); the journals are read back from that kernel's data directory."""
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo, {"parallel_workers": 1}, SCENARIOS[:2])
    factory.model.plan = ONE_TASK
    work = tmp_path / "clones"
    work.mkdir()
    data = tmp_path / "kdata"
    kernel = KernelProcess(str(data), extra_args=["--grant-host", str(work)], env=factory.env).start()
    try:
        done = factory.cli("--token-file", kernel.token_path, "factory", "run", str(job), "--connect", kernel.address,
                           "--workdir", str(work), "--id", "remote")
        again = factory.cli("--token-file", kernel.token_path, "--connect", kernel.address, "factory", "run",
                            str(job), "--workdir", str(work), "--id", "remote")
    finally:
        kernel.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "job remote: done" in done.stdout and factory.model.errors == []
    assert again.returncode == 1 and "job 'remote' already ran on this kernel" in again.stderr
    assert again.stderr.count("\n") == 1
    explain = factory.cli("factory", "explain", "remote", "--data", str(data))
    assert explain.returncode == 0 and explain.stdout.startswith("job remote: done"), explain.stderr


@pytest.mark.parametrize("factory", [FactoryModel(plan=ONE_TASK)], indirect=True)
def test_a_job_waits_for_a_person_to_approve_its_change(factory, tmp_path):
    """[policy] approve: once the final check passes the job waits; `aos factory approve` decides it."""
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo, {"parallel_workers": 1}, SCENARIOS[:2], policy="approve = true")
    proc = subprocess.Popen([sys.executable, "-m", "aos.cli", "factory", "run", str(job)], env=factory.env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "waiting for a person to approve the change" in line:
                early = factory.cli("factory", "approve", "nope")
                assert early.returncode == 1 and "no job 'nope' on this kernel" in early.stderr
                decided = factory.cli("factory", "approve", "calc", "--by", "alice", "--note", "lgtm", "--json")
                assert decided.returncode == 0, decided.stderr
                assert json.loads(decided.stdout)["decision"] == "approve"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(seen)
    assert proc.returncode == 0, out[-3000:] + proc.stderr.read()[-3000:]
    assert "APPROVED by alice: lgtm" in out
    assert "job calc: done: every scenario passes on the integrated change; approved by alice: lgtm" in out
