"""The console's Jobs view through a scheduler: a factory job run with `aos factory run --scheduler` on a real local
cluster (etcd, a moto S3 server, aos-scheduler, two host kernels) is listed by `aos console --connect SCHEDULER`
with its tasks and verdicts, its worlds on the hosts the scheduler placed them on, read through introductions; a
second job waiting for approval is approved through the console (audited) and its run ends done."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "factory"))
from consolekit import ConsoleProcess  # noqa: E402
from factorykit import Factory, FactoryModel, make_repo, write_job  # noqa: E402

from aos.kernel.scheduler.testing import etcd_binary, shared_storage_cluster  # noqa: E402
from aos.kernel.storage.testing import MotoServer  # noqa: E402

pytestmark = pytest.mark.slow


def test_a_job_placed_by_the_scheduler_shows_in_the_console(tmp_path):
    if etcd_binary() is None:
        pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
    factory = Factory(tmp_path, FactoryModel())
    work = tmp_path / "clones"
    work.mkdir()
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo)
    console = None
    with contextlib.ExitStack() as cleanup:  # last in, first out: the console, the cluster, moto, the factory
        cleanup.callback(factory.close)
        moto = MotoServer().start()
        cleanup.callback(moto.stop)
        # the cluster's own etcd; the hosts get the factory's environment over the test's
        c = cleanup.enter_context(shared_storage_cluster("", moto, prefix="aosc-", env=factory.env, hosts=2,
                                                         capacity=10, host_args=[["--grant-host", str(work)]] * 2))
        try:
            factory.env.update(moto.env())
            done = subprocess.run([sys.executable, "-m", "aos.cli", "--token-file", c.scheduler.token_path, "factory",
                                   "run", str(job), "--scheduler", c.addresses, "--workdir", str(work)],
                                  env=factory.env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            console = ConsoleProcess(c.addresses, c.scheduler.token_path,
                                     ["--audit-file", str(tmp_path / "audit.jsonl")]).start()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            opener.open(console.login, timeout=30).read()

            def get(path: str) -> Any:
                with opener.open(console.base + path, timeout=60) as reply:
                    return json.loads(reply.read())

            jobs = get("/api/jobs")["jobs"]
            assert [(j["universe"], j["job"], j["state"]) for j in jobs] == [("factory", "calc", "done")]
            assert sorted((t["id"], t["state"]) for t in jobs[0]["tasks"]) == [("t1", "accepted"), ("t2", "accepted")]
            report = get("/api/job/factory/calc")
            assert report["state"] == "done" and any(v["final"] and v["accepted"] for v in report["verdicts"])
            hosts = {w["id"]: w["host"] for w in report["worlds"]}
            assert set(hosts) == {"calc.planner", "calc.judge", "calc.governor", "calc.worker-1", "calc.worker-2"}
            assert all(hosts.values()) and len(set(hosts.values())) == 2, hosts  # placed on both hosts
            assert report["explain"][0] == "job calc: done (every scenario passes on the integrated change)"

            # a job waiting for approval on the cluster is approved from the console, through introductions
            gated = write_job(tmp_path, repo, {"parallel_workers": 1}, name="gated", policy="approve = true")
            proc = subprocess.Popen([sys.executable, "-m", "aos.cli", "--token-file", c.scheduler.token_path,
                                     "factory", "run", str(gated), "--scheduler", c.addresses, "--workdir", str(work)],
                                    env=factory.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            try:
                assert proc.stdout is not None
                seen = []
                for line in proc.stdout:
                    seen.append(line)
                    if "waiting for a person to approve the change" in line:
                        break
                assert get("/api/job/factory/gated")["state"] == "waiting for approval", "".join(seen)[-2000:]
                csrf = get("/api/session")["csrf"]
                request = urllib.request.Request(console.base + "/api/world/factory/gated.governor/factory/decide",
                                                 data=json.dumps({"decision": "approve", "note": "ok"}).encode(),
                                                 method="POST", headers={"Content-Type": "application/json",
                                                                         "X-AOS-CSRF": csrf})
                with opener.open(request, timeout=60) as reply:
                    assert json.loads(reply.read())["ok"] is True
                out, _ = proc.communicate(timeout=120)
                assert proc.returncode == 0, "".join(seen)[-2000:] + out[-2000:]
                assert "approved by console" in out
            finally:
                if proc.poll() is None:
                    proc.kill()
            audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
            assert [(r["phase"], r["action"], r["world"]) for r in audit] == [
                ("request", "factory_approve", "gated.governor"), ("result", "factory_approve", "gated.governor")]
        finally:
            if console is not None:
                console.stop()
