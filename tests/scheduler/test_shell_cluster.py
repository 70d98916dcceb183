"""``aos-shell`` and ``aos world`` on a cluster: given the schedulers' addresses and a scheduler
token they list, create and enter worlds through the scheduler, and follow the world one is in
when it moves to another host (a live journal tail goes on there), with nothing for the user to do.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import EtcdProcess, LocalCluster, shared_storage_cluster
from aos.kernel.storage.testing import MotoServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COUNTER = os.path.join(REPO, "examples", "counter")
PROMPT_IN_C3 = r"u/c3(?:\x1b\[[0-9;?]*[A-Za-z])*>"  # prompt_toolkit draws escape codes before the ">"


@pytest.fixture(scope="module")
def cluster(etcd_server: EtcdProcess, moto_server: MotoServer) -> Iterator[LocalCluster]:
    """One cluster (2 hosts on S3, universe ``u``) for the module: each test uses worlds of its own."""
    with shared_storage_cluster(f"{etcd_server.url}/t{uuid.uuid4().hex[:12]}", moto_server, prefix="aossh-",
                                hosts=2, capacity=10) as c:
        _admin(c, lambda s: s.scheduler.create_universe("u"))
        yield c


def _env() -> dict[str, str]:
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1")
    for name in ("AOS_CONNECT", "AOS_TOKEN_FILE", "AOS_UNIVERSE", "AOS_DATA"):
        env.pop(name, None)
    return env


def _shell_script(cluster: LocalCluster, connect: str, commands: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.shell", "--connect", connect, "--token-file",
                           cluster.scheduler.token_path, "-u", "u", "-c", commands],
                          capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)


def _admin(cluster: LocalCluster, action: Any) -> Any:
    async def main() -> Any:
        async with await SchedulerSession.open(cluster.addresses, cluster.scheduler.admin_token) as s:
            return await action(s)

    return run(main())


def test_shell_creates_enters_and_uses_a_world_through_the_scheduler(cluster: LocalCluster) -> None:
    # a dead address first: the shell turns to the next, as it would after losing a scheduler
    dead = "tcp:127.0.0.1:1"
    done = _shell_script(cluster, f"{dead},{cluster.addresses}",
                         f'create {COUNTER} --id c1; worlds; world c1; send demo/CounterEvent@1 {{"by": 3}}; '
                         'state demo/counter@1; status')
    assert done.returncode == 0, done.stderr + done.stdout
    assert "created world c1" in done.stdout
    assert '"count": 3' in done.stdout.replace("'", '"')
    listed = next(line for line in done.stdout.splitlines() if line.strip().startswith("c1"))
    assert "running" in listed and "host" in listed
    assert "leader" in done.stdout and "HOST" in done.stdout  # the cluster's status, hosts listed

    refused = _shell_script(cluster, cluster.addresses, "world c1; fork")
    assert refused.returncode == 1 and "talks to one kernel" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_aos_world_takes_several_scheduler_addresses(cluster: LocalCluster) -> None:
    env = {**_env(), "AOS_CONNECT": f"tcp:127.0.0.1:1,{cluster.addresses}",
           "AOS_TOKEN_FILE": cluster.scheduler.token_path}

    def aos(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aos.cli", *args], capture_output=True, text=True, env=env,
                              timeout=120)

    created = aos("world", "create", COUNTER, "--universe", "u", "--id", "c2")
    assert created.returncode == 0, created.stderr
    sent = aos("world", "send", "u/c2", "demo/CounterEvent@1", '{"by": 5}')
    assert sent.returncode == 0, sent.stderr
    state = json.loads(aos("world", "state", "u/c2", "demo/counter@1", "--json").stdout)
    assert state["state"]["demo/counter@1"] == {"count": 5}


def test_shell_tail_follows_the_world_to_its_new_host(cluster: LocalCluster) -> None:
    from aos.kernel.world.loader import read_bundle

    doc, wasm = read_bundle(COUNTER)

    async def create(s: SchedulerSession) -> str:
        placement, _ = await (await s.universe("u")).create_world(doc, wasm, "c3")
        await s.follow("u", "c3").send("demo/CounterEvent@1", {"by": 1})
        return str(placement["hostId"])

    first = _admin(cluster, create)
    child = pexpect.spawn(sys.executable, ["-m", "aos.shell", "--connect", cluster.addresses, "--token-file",
                                           cluster.scheduler.token_path, "-u", "u"],
                          cwd=REPO, env=_env(), encoding="utf-8", dimensions=(50, 220), timeout=30)
    try:
        child.expect("connected to a cluster's scheduler")
        child.sendline("world c3")
        child.expect(PROMPT_IN_C3)
        child.sendline("journal --tail")
        child.expect("following c3")
        other = "host1" if first == "host0" else "host0"

        async def move(s: SchedulerSession) -> dict[str, Any]:
            await s.scheduler.move("u", "c3", other)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while loop.time() < deadline:  # the move returns at once; wait until the world runs there
                where = await (await s.universe("u")).where("c3")
                if where["hostId"] == other and where["state"] == "running":
                    return where
                await asyncio.sleep(0.05)
            raise AssertionError(f"c3 did not come up on {other}: {where}")

        _admin(cluster, move)
        child.expect(r"moved host: following it there")
        _admin(cluster, lambda s: s.follow("u", "c3").send("demo/CounterEvent@1", {"by": 41}))
        child.expect(r"41")  # the event sent on the new host reaches the same tail
        child.sendcontrol("c")
        child.expect(PROMPT_IN_C3)
        child.sendline("state demo/counter@1")
        child.expect(r"42")
    finally:
        child.terminate(force=True)
