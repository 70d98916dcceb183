"""Prometheus metrics of one scheduler: ``aos-scheduler --metrics HOST:PORT`` serves them at ``/metrics``.

How it works: as in a kernel (``kernel/metrics.py``), nothing is counted on
the way: a scrape reads the scheduler's own state on its event loop's thread.
The placements, moves and failovers are the decisions this scheduler wrote
while it led (``SchedulerServices.decisions``, bumped after each etcd
transaction that recorded one), so sum them over every scheduler of a cluster
(a standby reports what it wrote when it led, and 0 if never); hosts, worlds
per host, loads and universes are read from the scheduler's mirror of etcd,
so every scheduler reports the same cluster. The process collectors of the
client library come along.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from aos.kernel.scheduler.service import SchedulerServices

log = logging.getLogger("aos.scheduler.metrics")


class SchedulerCollector(Collector):
    def __init__(self, services: SchedulerServices) -> None:
        self.services = services

    def collect(self) -> Iterator[Any]:
        services, view = self.services, self.services.view
        decisions = services.decisions
        for kind, name, text in (("placed", "placements", "worlds given a host (new, or waiting ones)"),
                                 ("moved", "moves", "worlds moved by command, drain or rebalancing"),
                                 ("failover", "failovers", "worlds taken over from a host that died")):
            family = CounterMetricFamily(f"aos_scheduler_{name}", f"Scheduling decisions this scheduler wrote while "
                                         f"leading: {text}")
            family.add_metric([], decisions.get(kind, 0))
            yield family
        yield GaugeMetricFamily("aos_scheduler_leading", "1 while this scheduler leads", value=int(services.leading))
        yield GaugeMetricFamily("aos_scheduler_hosts_live", "Hosts whose etcd lease is live", value=len(view.hosts))
        placements = view.placements()
        per_host = Counter(p.host for p in placements if p.host in view.hosts)
        load = Counter[str]()
        for p in placements:
            if p.host in view.hosts:
                load[p.host] += p.load
        worlds = GaugeMetricFamily("aos_scheduler_worlds", "Worlds placed on each live host", labels=["host"])
        running = GaugeMetricFamily("aos_scheduler_host_running", "Worlds each host reports running", labels=["host"])
        loads = GaugeMetricFamily("aos_scheduler_host_load", "Placed world load on each host", labels=["host"])
        capacity = GaugeMetricFamily("aos_scheduler_host_capacity", "Each host's capacity", labels=["host"])
        draining = GaugeMetricFamily("aos_scheduler_host_draining", "1 while a host drains", labels=["host"])
        for host in sorted(view.hosts.values(), key=lambda h: h.id):
            worlds.add_metric([host.id], per_host.get(host.id, 0))
            running.add_metric([host.id], host.worlds)
            loads.add_metric([host.id], load.get(host.id, 0.0))
            capacity.add_metric([host.id], host.capacity)
            draining.add_metric([host.id], int(host.id in view.drains))
        yield from (worlds, running, loads, capacity, draining)
        yield GaugeMetricFamily("aos_scheduler_worlds_waiting", "Worlds without a live host (being placed)",
                                value=sum(1 for p in placements if p.host not in view.hosts))
        moving = sum(1 for p in placements if p.previous)
        yield GaugeMetricFamily("aos_scheduler_worlds_moving", "Worlds being handed over", value=moving)
        universes = GaugeMetricFamily("aos_scheduler_universe_worlds", "Worlds per universe", labels=["universe"])
        stored = GaugeMetricFamily("aos_scheduler_universe_stored_bytes", "Bytes the hosts measured per universe "
                                   "(journals)", labels=["universe"])
        for u in sorted(view.universes.values(), key=lambda u: u.id):
            universes.add_metric([u.id], u.worlds)
            stored.add_metric([u.id], view.stored_bytes(u.id))
        yield from (universes, stored)
        yield GaugeMetricFamily("aos_scheduler_history_entries", "Scheduling history entries kept in etcd",
                                value=len(view.history))
        yield GaugeMetricFamily("aos_scheduler_connections", "Open client connections", value=services.connections)


def registry_for(services: SchedulerServices) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SchedulerCollector(services))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class SchedulerMetrics:
    """``GET /metrics`` in the text exposition format, on the scheduler's own event loop."""

    def __init__(self, services: SchedulerServices, address: str) -> None:
        self.registry = registry_for(services)
        self.requested = address
        self.address = address
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        host, _, port = self.requested.rpartition(":")
        app = web.Application()

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host.strip("[]") or "127.0.0.1", int(port)).start()
        bound = self._runner.addresses[0]
        self.address = f"{'[' + bound[0] + ']' if ':' in bound[0] else bound[0]}:{bound[1]}"
        log.info("event=metrics_listening addr=%s", self.address)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.shield(runner.cleanup())
