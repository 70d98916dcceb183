"""``aos-scheduler --metrics``: a real cluster (etcd, moto S3, a scheduler, two host kernels) scraped over HTTP and
parsed with the client library's parser after placements, a move by command and a host killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, shared_storage_cluster
from aos.kernel.scheduler.testing import until as _until
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


@pytest.fixture
def metered_cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    env = {"AOS_METRICS": "127.0.0.1:0"}  # the scheduler (and each host) serve metrics
    with shared_storage_cluster(etcd, moto_server, prefix="aosm-", env=env, hosts=2, capacity=10) as c:
        yield c


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def total(samples: dict[str, Any], name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


until = partial(_until, timeout=30.0, retry=())  # quick conditions, and any error fails the test at once


def test_scheduler_metrics_count_placements_moves_failovers_and_hosts(metered_cluster: LocalCluster) -> None:
    c = metered_cluster
    url = next(line for line in c.scheduler.output if line.startswith("metrics ")).split(" ", 1)[1]
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(c.addresses, c.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 2))
            await s.scheduler.create_universe("u")
            u = await s.universe("u")
            first, _ = await u.create_world(doc, wasm, "c1")
            await u.create_world(doc, wasm, "c2")
            other = "host1" if first["hostId"] == "host0" else "host0"
            await s.scheduler.move("u", "c1", other)
            placed = await asyncio.to_thread(scrape, url)
            await until(lambda: _running(u, "c1", other))
            dead = (await u.where("c2"))["hostId"]
            c.kernels[int(dead[-1])].kill()
            await until(lambda: _failed_over(url))
            return placed, await asyncio.to_thread(scrape, url), dead

    placed, after, dead = run(main())
    assert total(placed, "aos_scheduler_placements_total") == 2
    assert total(placed, "aos_scheduler_moves_total") >= 1
    assert total(placed, "aos_scheduler_failovers_total") == 0
    assert total(placed, "aos_scheduler_leading") == 1 and total(placed, "aos_scheduler_hosts_live") == 2
    assert total(placed, "aos_scheduler_worlds") == 2
    assert {labels["host"] for labels, _ in placed["aos_scheduler_host_capacity"]} == {"host0", "host1"}
    assert dict((lab["universe"], v) for lab, v in placed["aos_scheduler_universe_worlds"]) == {"u": 2}
    assert total(after, "aos_scheduler_hosts_live") == 1
    assert total(after, "aos_scheduler_failovers_total") >= 1
    assert [labels["host"] for labels, _ in after["aos_scheduler_worlds"]] == [h for h in ("host0", "host1")
                                                                               if h != dead]
    assert total(after, "aos_scheduler_history_entries") >= 4
    assert "process_cpu_seconds_total" in after


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n


async def _running(u: Any, world: str, host: str) -> bool:
    where = await u.where(world)
    return bool(where["state"] == "running" and where["hostId"] == host)


async def _failed_over(url: str) -> bool:
    return total(await asyncio.to_thread(scrape, url), "aos_scheduler_failovers_total") >= 1
