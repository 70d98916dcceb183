"""Leader election on a real etcd: one of several aos-scheduler processes leads, the
others stand by and name the leader, and a standby leads once the leader is
killed with SIGKILL (its lease lapses) or stopped (it revokes its lease).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.errors import NotLeader
from aos.kernel.scheduler.testing import SchedulerProcess


@pytest.fixture
def schedulers(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SchedulerProcess]]:
    procs = [SchedulerProcess(str(tmp_path_factory.mktemp(f"sched{i}")), etcd, extra_args=["--lease-ttl", "2"])
             for i in range(3)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def wait_one_leader(procs: list[SchedulerProcess], timeout: float = 20.0) -> SchedulerProcess:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in procs if p.proc is not None and p.proc.poll() is None]
        leaders = [p for p in alive if p.leads]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.02)
    raise AssertionError(f"not exactly one leader: {[(p.address, p.leads) for p in procs]}")


def test_one_leads_standbys_redirect_and_a_standby_takes_over_after_sigkill(schedulers: list[SchedulerProcess]) -> None:
    """Exactly one scheduler leads; a standby refuses writes naming it; after SIGKILL another one leads and serves."""
    leader = wait_one_leader(schedulers)
    standby = next(p for p in schedulers if p is not leader)

    async def create_on_standby() -> str:
        session = await SchedulerSession.open(standby.address, standby.admin_token)
        try:
            with pytest.raises(NotLeader) as refused:
                await session.scheduler.create_universe("u1")
            assert refused.value.leader == leader.address
            # the session follows the leader and the standby's own token works there
            info = await session.on_leader(lambda s: s.scheduler.create_universe("u1", "first"))
            return str(info["universeId"])
        finally:
            session.close()

    assert run(create_on_standby()) == "u1"
    leader.kill()
    new_leader = wait_one_leader([p for p in schedulers if p is not leader])
    assert new_leader is not leader

    async def list_on_new_leader() -> list[str]:
        session = await SchedulerSession.open(new_leader.address, leader.admin_token)  # the dead one's token
        try:
            await session.scheduler.create_universe("u2")
            return [u["universeId"] for u in await session.scheduler.list_universes()]
        finally:
            session.close()

    assert run(list_on_new_leader()) == ["u1", "u2"]


def test_a_stopped_leader_hands_over_at_once(schedulers: list[SchedulerProcess]) -> None:
    """SIGTERM on the leader revokes its lease, so a standby leads and the old one exits cleanly."""
    leader = wait_one_leader(schedulers)
    assert leader.stop() == 0
    wait_one_leader([p for p in schedulers if p is not leader])


def test_an_operator_token_becomes_an_admin_token(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """--admin-token FILE (a Kubernetes Secret, say) restores the Scheduler on every scheduler of the cluster."""
    from aos.caps.tokens import new_token

    secret = tmp_path_factory.mktemp("secret") / "admin.token"
    secret.write_text(new_token() + "\n")
    first = SchedulerProcess(str(tmp_path_factory.mktemp("s1")), etcd, extra_args=["--admin-token", str(secret)])
    second = SchedulerProcess(str(tmp_path_factory.mktemp("s2")), etcd)
    try:
        first.start()
        second.start()

        async def status_on(address: str) -> str:
            async with await SchedulerSession.open(address, secret.read_text().strip()) as s:
                return str((await s.scheduler.status())["thisScheduler"]["address"])

        assert run(status_on(first.address)) == first.address
        assert run(status_on(second.address)) == second.address
    finally:
        first.kill()
        second.kill()
