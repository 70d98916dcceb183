"""The console's Jobs view in a real browser (Debian's chromium driven by Playwright) against a real kernel running
real factory jobs (`aos factory run --connect`) on the provider twin: the job is listed with its state, tasks and
spending; its page shows the task, the worker's world, the judge's verdict with evidence and the audit trail, and
follows the job live as a person approves it from the page (confirmed, audited); Stop ends another job; a read-only
token's page has no approve or stop, and the console refuses them.

Screenshots go to ``$AOS_CONSOLE_SHOTS`` when set (docs/console/ is made that way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "factory"))
from consolekit import ConsoleProcess  # noqa: E402
from factorykit import (  # noqa: E402
    KEY, SCENARIOS, Factory, FactoryModel, ModelTurn, call, honest_worker, make_repo, write_job,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ONE_TASK = {"tasks": [{"id": "t1", "title": "add mul", "description": "Create mul.py with mul(a, b) = a * b."}]}
WAITING = "waiting for a person to approve the change"
GATED = "GATED-JOB"  # in a job's intent: its worker waits for the test's go before it writes


def gated(go: Path):
    """The honest worker, but in a gated job its first step is a command that waits until ``go`` exists."""
    def worker(task: str, prompt: str, results: list[str]) -> ModelTurn:
        if GATED not in prompt:
            return honest_worker(task, prompt, results)
        if not results:
            return ModelTurn(tool_calls=[call("shell", command=f"while [ ! -e {go} ]; do sleep 0.05; done; echo go")])
        return honest_worker(task, prompt, results[1:])
    return worker

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (./run setup installs it): no browser to drive",
                allow_module_level=True)


class JobRun:
    """``aos factory run JOB --connect`` in a subprocess; ``wait_for(text)`` reads its output up to a line."""

    def __init__(self, factory: Factory, kernel: KernelProcess, job: Path, job_id: str, work: Path) -> None:
        self.lines: list[str] = []
        self.seen = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aos.cli", "--token-file", kernel.token_path, "--connect", kernel.address,
             "factory", "run", str(job), "--workdir", str(work), "--id", job_id],
            env=factory.env, cwd=factory.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.seen:
                self.lines.append(line)
                self.seen.notify_all()
        with self.seen:
            self.lines.append("")  # the end
            self.seen.notify_all()

    def wait_for(self, text: str, timeout: float = 90) -> None:
        with self.seen:
            if not self.seen.wait_for(lambda: any(text in x for x in self.lines) or "" in self.lines, timeout):
                raise AssertionError(f"no {text!r} in time: {''.join(self.lines)[-2000:]}")
            if not any(text in x for x in self.lines):
                raise AssertionError(f"the run ended without {text!r}: {''.join(self.lines)[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(15)


def in_thread(work: Any) -> Any:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = work()
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test's thread
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def read_only_token(kernel: KernelProcess) -> str:
    async def main() -> str:
        async with await Connection.open(kernel.address) as conn:
            worlds = await (await conn.restore_kernel(kernel.admin_token)).worlds("factory")
            return await (await worlds.read_only()).save()  # type: ignore[no-any-return]

    return in_thread(lambda: run(main()))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import tempfile

    root = tmp_path_factory.mktemp("jobs")
    factory = Factory(root, FactoryModel(gated(root / "go"), plan=ONE_TASK))
    repo = make_repo(root)
    job = write_job(root, repo, {"parallel_workers": 1}, SCENARIOS[:2], policy="approve = true")
    slow = write_job(root, repo, {"parallel_workers": 1}, SCENARIOS[:2], name="slow", policy="approve = true")
    slow.write_text(slow.read_text().replace('intent = "', f'intent = "{GATED}: '))
    work = root / "clones"
    work.mkdir()
    data = tempfile.mkdtemp(prefix="aosj-", dir="/tmp")  # unix socket paths are short
    kernel = KernelProcess(data, extra_args=["--grant-host", str(work), "--idle-seconds", "3600"],
                           env=factory.env).start()
    runs: list[JobRun] = []
    consoles: list[ConsoleProcess] = []
    try:
        runs.append(JobRun(factory, kernel, job, "calc", work))
        runs[0].wait_for(WAITING)
        runs.append(JobRun(factory, kernel, job, "calc2", work))  # after calc made the shared memory world
        (root / "ro.token").write_text(read_only_token(kernel) + "\n")
        consoles.append(ConsoleProcess(kernel.address, kernel.token_path,
                                       ["--audit-file", str(root / "audit.jsonl")]).start())
        consoles.append(ConsoleProcess(kernel.address, str(root / "ro.token"),
                                       ["--audit-file", str(root / "ro-audit.jsonl")]).start())
        shots = os.environ.get("AOS_CONSOLE_SHOTS") or str(root / "shots")
        os.makedirs(shots, exist_ok=True)
        with playwright_sync.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(str(root / "chromium"), executable_path=CHROMIUM,
                                                            args=FLAGS, headless=True,
                                                            viewport={"width": 1280, "height": 900})
            try:
                yield {"kernel": kernel, "console": consoles[0], "ro": consoles[1], "runs": runs, "context": context,
                       "shots": shots, "factory": factory, "data": data, "slow": slow, "work": work,
                       "go": root / "go"}
            finally:
                context.close()
    finally:
        for c in consoles:
            c.stop()
        for r in runs:
            r.stop()
        kernel.kill()
        factory.close()
        import shutil

        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def page(setup):
    """The admin console's page, logged in once (each login link works once)."""
    return login(setup)


def login(setup, which: str = "console") -> Any:
    page = setup["context"].new_page()
    page.set_default_timeout(20_000)
    page.goto(setup[which].login)
    page.wait_for_selector("#who:has-text('·')")
    return page


def shot(setup, page, name: str) -> None:
    path = os.path.join(setup["shots"], f"{name}.png")
    page.screenshot(path=path, full_page=False)
    assert os.path.getsize(path) > 1000


def test_a_read_only_token_sees_the_job_but_cannot_approve_or_stop_it(setup):
    # the CLI, reading the kernel's data directory beside it, says what the console will
    status = setup["factory"].cli("factory", "status", "calc", "--data", setup["data"])
    assert status.returncode == 0 and status.stdout.startswith("job calc: waiting for approval"), status.stderr
    page = login(setup, "ro")
    base = setup["ro"].base
    page.goto(base + "/#/job/factory/calc")
    page.wait_for_selector("[data-testid=job-state]:has-text('waiting for approval')")
    page.wait_for_selector("[data-testid=read-only]")
    assert page.query_selector("[data-testid=action-approve]") is None
    assert page.query_selector("[data-testid=action-reject]") is None
    assert page.query_selector("[data-testid=action-stop]") is None
    refused = page.evaluate("""async () => {
        const s = await (await fetch('/api/session')).json();
        const r = await fetch('/api/world/factory/calc.governor/factory/decide', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-AOS-CSRF': s.csrf}, body: '{"decision": "approve"}'});
        return [r.status, (await r.json()).error];
    }""")
    assert refused == [403, "PermissionDenied"]
    page.close()


def test_the_jobs_view_lists_the_job_and_its_page_follows_an_approval_live(setup, page):
    base = setup["console"].base
    page.click("nav a[data-nav=jobs]")
    row = page.wait_for_selector("[data-testid=jobs] tr[data-job=calc]")
    page.wait_for_selector("tr[data-job=calc] [data-testid=job-state]:has-text('waiting for approval')")
    text = row.inner_text()
    assert "t1: accepted" in text and "factory" in text and "/ 100000" in text
    assert "so far" in text and "– / $5.0000" not in text  # the governor's running count, before its totals
    page.wait_for_selector("[data-testid=jobs] tr[data-job=calc2]")
    shot(setup, page, "jobs")

    page.click("tr[data-job=calc] [data-testid=job-link]")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    task = page.wait_for_selector("[data-testid=job-task-list] tr[data-task=t1]")
    assert "accepted" in task.inner_text() and "calc.worker-1" in task.inner_text()
    verdicts = page.inner_text("body")
    assert "final check: ACCEPTED" in verdicts and "t1 attempt 1: ACCEPTED" in verdicts
    evidence = page.inner_text("[data-testid=verdict] >> nth=0")
    assert "mul multiplies" in evidence and "pass" in evidence and "add still adds (hold-out)" in evidence
    assert page.get_attribute("[data-testid=worker-link]", "href") == "#/world/factory/calc.worker-1"
    assert page.get_attribute("[data-testid=transcript-link]", "href") == "#/agent/factory/calc.worker-1/t1-a1"
    assert "waiting for a person to approve the change" in page.inner_text("[data-testid=job-trail]")
    shot(setup, page, "job")

    # approve from the page: confirmed, then the page (not reloaded) follows the job to its end
    page.fill("[data-testid=decision-note]", "looks good")
    page.click("[data-testid=action-approve]")
    page.wait_for_selector("dialog[open]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=job-state]:has-text('done')", timeout=60_000)
    trail = page.inner_text("[data-testid=job-trail]")
    assert "APPROVED by console" in trail and "looks good" in trail and "end: done" in trail
    assert page.query_selector("[data-testid=action-approve]") is None
    run_ = setup["runs"][0]
    assert run_.proc.wait(60) == 0, "".join(run_.lines)[-2000:]
    shot(setup, page, "job-done")

    audit = [json.loads(x) for x in page.evaluate(
        "async () => (await (await fetch('/api/audit?universe=factory')).json()).records.map(r => JSON.stringify(r))")]
    approvals = [r for r in audit if r.get("action") == "factory_approve"]
    assert {r["phase"] for r in approvals} == {"request", "result"}
    assert all(r["world"] == "calc.governor" and r["params"] == {"job": "calc", "note": "looks good"}
               for r in approvals)
    assert KEY not in json.dumps(audit)

    # the page tells what `aos factory explain` tells from the kernel's data directory (read beside it)
    report = page.evaluate("async () => (await fetch('/api/job/factory/calc')).json()")
    explain = setup["factory"].cli("factory", "explain", "calc", "--data", setup["data"])
    assert explain.returncode == 0, explain.stderr
    assert report["explain"] == explain.stdout.splitlines()

    # bad calls get a clear, typed answer
    answers = page.evaluate("""async () => {
        const s = await (await fetch('/api/session')).json();
        const post = async (path, body) => { const r = await fetch(path, {method: 'POST', body: JSON.stringify(body),
            headers: {'Content-Type': 'application/json', 'X-AOS-CSRF': s.csrf}}); return [r.status, await r.json()]; };
        const get = async (path) => { const r = await fetch(path); return [r.status, await r.json()]; };
        return [await post('/api/world/factory/calc.governor/factory/decide', {decision: 'approve'}),
                await post('/api/world/factory/calc.judge/factory/decide', {decision: 'approve'}),
                await post('/api/world/factory/calc2.governor/factory/decide', {decision: 'maybe'}),
                await get('/api/job/factory/nope')];
    }""")
    assert [(status, body["error"]) for status, body in answers] == [
        (400, "InvalidArgument"), (400, "InvalidArgument"), (400, "InvalidArgument"), (404, "UnknownWorld")]
    assert "job calc is not waiting for approval" in answers[0][1]["message"]
    assert "not a factory job's governor world" in answers[1][1]["message"]


def test_stop_ends_a_job_from_its_page(setup, page):
    run_ = setup["runs"][1]
    run_.wait_for(WAITING)
    page.goto(setup["console"].base + "/#/job/factory/calc2")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    page.click("[data-testid=action-stop]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=job-state]:has-text('stopped')", timeout=60_000)
    assert "stopped from the console" in page.inner_text("[data-testid=job-reason]")
    assert run_.proc.wait(60) == 3, "".join(run_.lines)[-2000:]
    page.goto(setup["console"].base + "/#/jobs")
    page.wait_for_selector("tr[data-job=calc2] [data-testid=job-state]:has-text('stopped')")
    page.wait_for_selector("tr[data-job=calc] [data-testid=job-state]:has-text('done')")


def test_a_job_page_follows_the_job_as_it_advances(setup, page):
    """Opened while the worker is busy: the task is running and nothing is judged; the worker finishes and the
    open page shows the change, the verdicts and the wait for approval as they are journaled."""
    run_ = JobRun(setup["factory"], setup["kernel"], setup["slow"], "calc3", setup["work"])
    setup["runs"].append(run_)
    page.goto(setup["console"].base + "/#/jobs")
    page.click("tr[data-job=calc3] [data-testid=job-link]")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    page.wait_for_selector("tr[data-task=t1] [data-testid=task-state]:has-text('running')")
    page.wait_for_selector("[data-testid=job-state]:has-text('running')")
    assert "no verdict yet" in page.inner_text("body")
    page.wait_for_selector("[data-testid=toast]", state="detached")  # the last test's, out of the picture
    shot(setup, page, "job-running")
    setup["go"].write_text("")
    page.wait_for_selector("tr[data-task=t1] [data-testid=task-state]:has-text('accepted')", timeout=60_000)
    page.wait_for_selector("[data-testid=job-state]:has-text('waiting for approval')", timeout=60_000)
    page.wait_for_selector("[data-testid=verdict] >> nth=1")  # t1's and the final check's
    assert "transcript" in page.inner_text("tr[data-task=t1]")
    assert page.query_selector("[data-testid=action-approve]") is not None
