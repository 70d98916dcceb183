"""A factory job on a three-host local cluster (real etcd, moto S3, a scheduler, three host kernels): the
scheduler places the job's worlds, portal mail crosses hosts, and when the host running a worker is
SIGKILLed mid-task the job still completes, with every task done once and no result lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from factorykit import Factory, FactoryModel, make_repo, write_job  # noqa: E402

from aos.kernel.client import run  # noqa: E402
from aos.kernel.scheduler.client import SchedulerSession  # noqa: E402
from aos.kernel.scheduler.testing import LocalCluster, etcd_binary, shared_storage_cluster  # noqa: E402
from aos.kernel.storage.testing import MotoServer  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster_factory(tmp_path) -> Iterator[tuple[Factory, LocalCluster, str]]:
    if etcd_binary() is None:
        pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
    factory = Factory(tmp_path, FactoryModel())
    work = tmp_path / "clones"
    work.mkdir()
    with contextlib.ExitStack() as cleanup:  # last in, first out: the cluster, moto, the factory
        cleanup.callback(factory.close)
        moto = MotoServer().start()
        cleanup.callback(moto.stop)
        # the cluster's own etcd; the hosts get the factory's environment over the test's
        c = cleanup.enter_context(shared_storage_cluster("", moto, prefix="aosf-", env=factory.env, hosts=3,
                                                         capacity=10, host_args=[["--grant-host", str(work)]] * 3))
        factory.env.update({k: v for k, v in moto.env().items()})
        yield factory, c, str(work)


async def _host_of(c: LocalCluster, world: str) -> str:
    async with await SchedulerSession.open(c.scheduler.address, c.scheduler.admin_token) as s:
        return str((await (await s.universe("factory")).where(world))["hostId"])


def test_a_job_survives_the_sigkill_of_a_workers_host(cluster_factory, tmp_path):
    factory, c, work = cluster_factory
    repo = make_repo(tmp_path)
    job = write_job(tmp_path, repo)
    proc = subprocess.Popen([sys.executable, "-m", "aos.cli", "--token-file", c.scheduler.token_path, "factory",
                             "run", str(job), "--scheduler", c.addresses, "--workdir", work, "--json"],
                            env=factory.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    killed: list[str] = []
    try:
        for raw in proc.stdout:
            ev = json.loads(raw)
            lines.append(ev)
            if not killed and ev.get("kind") == "task_started" and ev["world"] == "calc.worker-1":
                host = run(_host_of(c, "calc.worker-1"))
                victim = c.kernels[int(host.removeprefix("host"))]
                os.kill(victim.proc.pid, signal.SIGKILL)
                killed.append(host)
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert killed, "the worker never started"
    assert proc.returncode == 0, json.dumps(lines[-5:]) + err[-3000:]
    end = lines[-1]
    assert end["status"] == "done" and sorted(a["task"] for a in end["accepted"]) == ["t1", "t2"]
    events = lines[:-1]
    # every task dispatched once, changed once, accepted once: nothing done twice, nothing lost
    for task in ("t1", "t2"):
        assert [e["data"]["attempt"] for e in events if e["kind"] == "task_dispatched"
                and e["data"]["task"] == task] == [1]
        assert len([e for e in events if e["kind"] == "change" and e["data"]["task"] == task]) == 1
        assert len([e for e in events if e["kind"] == "accepted" and e["data"]["task"] == task]) == 1
    assert run(_host_of(c, "calc.worker-1")) != killed[0]  # it failed over
