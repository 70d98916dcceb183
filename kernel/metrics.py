"""Prometheus metrics of one kernel: ``aos-kernel --metrics HOST:PORT`` serves them at ``/metrics``.

How it works: the hot path only bumps plain integers the kernel keeps anyway
(``GroupCommitter.turns``, ``JournalStore.appends``, ``WorldHost.inputs``) or
observes one histogram sample per group-commit turn; everything else (worlds
awake, effects in flight, CAS bytes) is read from the kernel's own state when
a scrape comes in, by ``KernelCollector`` on the event loop's thread, so
nothing is shared with another thread and nothing is counted twice. LLM
calls and portal messages, a few per second at most, use ordinary
``prometheus_client`` counters.

CAS bytes per universe are counted once, by a scan of a RocksDB snapshot in
a worker thread on the first scrape (or ``Kernel.universes``), plus what
``CasStore.put`` wrote since; until that count is done the gauge is absent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from aos.kernel.services import KernelServices

log = logging.getLogger("aos.kernel.metrics")

# --- process-wide instruments (module level: one set per process, registered once) -----------

REGISTRY = CollectorRegistry(auto_describe=True)

COMMIT_BATCH_OPS = Histogram(
    "aos_commit_batch_ops", "Ops written in one group-commit turn (one synced RocksDB write)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384), registry=REGISTRY)
COMMIT_BATCH_CALLERS = Histogram(
    "aos_commit_batch_callers", "Commit calls served by one group-commit turn",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024), registry=REGISTRY)
COMMIT_SYNC_SECONDS = Histogram(
    "aos_commit_sync_seconds", "Time of one synced group-commit write (WriteBatch + WAL fsync)",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), registry=REGISTRY)
LLM_CALLS = Counter("aos_llm_calls", "llm.generate effects settled, by provider, model and status",
                    ["provider", "model", "status"], registry=REGISTRY)
LLM_TOKENS = Counter("aos_llm_tokens", "Tokens of settled llm.generate calls, by direction",
                     ["provider", "model", "direction"], registry=REGISTRY)
LLM_COST = Counter("aos_llm_cost_usd", "Estimated cost of settled llm.generate calls (list prices; unknown models "
                   "count 0)", ["provider", "model"], registry=REGISTRY)
MESSAGES_SENT = Counter("aos_portal_messages_sent", "portal.send messages enqueued to another world "
                        "(accepted: new; duplicate: a resend dropped by id)", ["universe", "result"],
                        registry=REGISTRY)


def observe_commit(ops: int, callers: int, seconds: float) -> None:
    """One group-commit turn (called by ``GroupCommitter`` once per synced write)."""
    COMMIT_BATCH_OPS.observe(ops)
    COMMIT_BATCH_CALLERS.observe(callers)
    COMMIT_SYNC_SECONDS.observe(seconds)


def observe_llm(provider: str, model: str, status: str, result: dict[str, Any]) -> None:
    """One settled llm.generate call; ``result`` is the adapter's result (usage under response)."""
    provider, model = provider or "unknown", model or "unknown"
    LLM_CALLS.labels(provider, model, status).inc()
    usage = ((result.get("response") or {}).get("usage") or {}) if isinstance(result, dict) else {}
    tokens_in, tokens_out = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    if tokens_in:
        LLM_TOKENS.labels(provider, model, "input").inc(tokens_in)
    if tokens_out:
        LLM_TOKENS.labels(provider, model, "output").inc(tokens_out)
    micro = result.get("cost_micro_usd") if isinstance(result, dict) else None
    cost = micro / 1_000_000 if isinstance(micro, int) else None
    if cost is None and (tokens_in or tokens_out):
        cost = estimate_cost(model, tokens_in, tokens_out)
    if cost:
        LLM_COST.labels(provider, model).inc(float(cost))


def estimate_cost(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """List-price cost from the LLM catalog (never imports litellm: that costs seconds)."""
    try:
        from aos.adapters.llm.catalog import catalog_cost
        from aos.adapters.llm.types import Usage

        return catalog_cost(model, Usage(tokens_in, tokens_out, tokens_in + tokens_out))
    except Exception:  # noqa: BLE001 -- pricing is best effort, never a failed effect
        return None


def observe_portal(universe: str, accepted: bool) -> None:
    MESSAGES_SENT.labels(universe, "accepted" if accepted else "duplicate").inc()


# --- CAS usage ----------------------------------------------------------------------------------

# bytes CasStore.put wrote per universe since the process started (a new blob only)
CAS_WRITTEN: Tally[str] = Tally()
CAS_BLOBS_WRITTEN: Tally[str] = Tally()


def cas_written(universe: str, size: int) -> None:
    CAS_WRITTEN[universe] += size
    CAS_BLOBS_WRITTEN[universe] += 1


class CasUsage:
    """Bytes and blobs per universe: one scan of a database snapshot, then ``CAS_WRITTEN``.

    The scan runs in a worker thread, once, when first asked for; puts after
    its snapshot are added from the counters (a put whose check ran just
    before the snapshot and whose write landed just after is missed: one blob,
    once, at the first count).
    """

    def __init__(self, services: KernelServices) -> None:
        self._services = services
        self._scanned: dict[str, tuple[int, int]] | None = None
        self._base: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        family = self._services.store.family("cas")
        self._base = (dict(CAS_WRITTEN), dict(CAS_BLOBS_WRITTEN))
        iterator = family.iter()  # an iterator reads the database as of its creation
        self._thread = threading.Thread(target=self._scan, args=(iterator,), name="aos-cas-usage", daemon=True)
        self._thread.start()

    def _scan(self, iterator: Any) -> None:
        totals: dict[str, list[int]] = {}
        started = time.monotonic()
        try:
            iterator.seek_to_first()
            while iterator.valid():
                name = iterator.key().split(b"\0", 1)[0].decode()
                entry = totals.setdefault(name, [0, 0])
                entry[0] += len(iterator.value())
                entry[1] += 1
                iterator.next()
        except Exception:  # noqa: BLE001 -- a metric must never take the kernel down
            log.exception("event=cas_usage_scan_failed")
            return
        self._scanned = {u: (b, n) for u, (b, n) in totals.items()}
        log.info("event=cas_usage_counted universes=%d seconds=%.3f", len(totals), time.monotonic() - started)

    def get(self) -> dict[str, tuple[int, int]] | None:
        """``{universe: (bytes, blobs)}``, or None while the first count runs."""
        self.start()
        if self._scanned is None:
            return None
        out = dict(self._scanned)
        base_bytes, base_blobs = self._base
        for universe in set(CAS_WRITTEN) | set(out):
            size, blobs = out.get(universe, (0, 0))
            out[universe] = (size + CAS_WRITTEN[universe] - base_bytes.get(universe, 0),
                             blobs + CAS_BLOBS_WRITTEN[universe] - base_blobs.get(universe, 0))
        return out


_USAGE: weakref.WeakKeyDictionary[Any, CasUsage] = weakref.WeakKeyDictionary()


def cas_usage(services: KernelServices) -> CasUsage:
    """The one ``CasUsage`` of a kernel (shared by ``/metrics`` and ``Kernel.universes``)."""
    usage = _USAGE.get(services)
    if usage is None:
        usage = _USAGE[services] = CasUsage(services)
    return usage


# --- what the kernel's state says at scrape time ---------------------------------------------------


class KernelCollector(Collector):
    """Reads one kernel's live state when scraped (on the event loop's thread)."""

    def __init__(self, services: KernelServices, cas: CasUsage) -> None:
        self._services = services
        self._cas = cas

    def collect(self) -> Iterator[Any]:
        services = self._services
        host = services.worlds
        journal = services.journal
        committer = services.committer

        yield CounterMetricFamily("aos_commit_turns", "Synced group-commit writes", value=committer.turns)
        yield CounterMetricFamily("aos_commit_ops", "Ops written by group commit", value=committer.ops)
        yield CounterMetricFamily("aos_journal_appends", "Journal appends (world and raw journals)",
                                  value=journal.appends)
        yield CounterMetricFamily("aos_journal_records", "Journal records committed", value=journal.records_committed)
        yield CounterMetricFamily("aos_journal_bytes", "Bytes of journal records appended", value=journal.bytes_appended)

        inputs = CounterMetricFamily("aos_world_events", "Events journaled by the worlds of a universe "
                                     "(World.send and portal messages)", labels=["universe"])
        for universe, count in sorted(host.events.items()):
            inputs.add_metric([universe], count)
        yield inputs
        receipts = CounterMetricFamily("aos_world_receipts", "Effect receipts journaled by the worlds of a universe",
                                       labels=["universe"])
        for universe, count in sorted(host.receipts.items()):
            receipts.add_metric([universe], count)
        yield receipts

        states = GaugeMetricFamily("aos_worlds", "Worlds by state", labels=["universe", "state"])
        for (universe, state), count in sorted(world_states(services).items()):
            states.add_metric([universe, state], count)
        yield states
        yield CounterMetricFamily("aos_world_wakes", "World wakes (snapshot restore + replay)", value=host.wakes)
        yield CounterMetricFamily("aos_world_hibernations", "World hibernations", value=host.hibernations)

        flight = GaugeMetricFamily("aos_effects_in_flight", "Admitted effects without a receipt yet, by kind "
                                   "(running: an adapter runs it; waiting: a timer or a mail receipt is due)",
                                   labels=["kind", "phase"])
        for (kind, phase), count in sorted(effects_in_flight(services).items()):
            flight.add_metric([kind, phase], count)
        yield flight

        usage = self._cas.get()
        if usage is not None:
            size = GaugeMetricFamily("aos_cas_bytes", "Bytes stored in CAS per universe", labels=["universe"])
            blobs = GaugeMetricFamily("aos_cas_blobs", "Blobs stored in CAS per universe", labels=["universe"])
            for universe, (nbytes, nblobs) in sorted(usage.items()):
                size.add_metric([universe], nbytes)
                blobs.add_metric([universe], nblobs)
            yield size
            yield blobs
        yield GaugeMetricFamily("aos_connections", "Open client connections", value=services.connections)


def world_states(services: KernelServices) -> Tally[tuple[str, str]]:
    """``(universe, awake|hibernated|quarantined) -> count``."""
    host = services.worlds
    out: Tally[tuple[str, str]] = Tally()
    for meta in host.registry.all():
        state = "quarantined" if meta.quarantined else "awake" if host.awake(meta.universe, meta.world_id) else \
            "hibernated"
        out[(meta.universe, state)] += 1
    return out


def effects_in_flight(services: KernelServices) -> Tally[tuple[str, str]]:
    from aos.kernel.host.effects import effect_kind

    out: Tally[tuple[str, str]] = Tally()
    for driver in services.worlds.drivers():
        running = driver.running_effects()
        for intent in driver.world.open_intents():
            kind = effect_kind(intent.effect) or intent.effect
            out[(kind, "running" if intent.intent_hash in running else "waiting")] += 1
    return out


def universes(services: KernelServices) -> list[dict[str, Any]]:
    """``Kernel.universes``: every universe with worlds or blobs, and its counts."""
    host = services.worlds
    states = world_states(services)
    cas = cas_usage(services).get()
    names = {u for u, _ in states} | set(cas or ()) | set(host.events)
    out = []
    for name in sorted(names):
        size, blobs = (cas or {}).get(name, (0, 0))
        out.append({"name": name, "worlds": sum(n for (u, _), n in states.items() if u == name),
                    "awake": states[(name, "awake")], "quarantined": states[(name, "quarantined")],
                    "events": host.events[name], "receipts": host.receipts[name],
                    "casBytes": size, "casBlobs": blobs, "casCounted": cas is not None})
    return out


# --- serving ------------------------------------------------------------------------------------------


class _Forward(Collector):
    """The process-wide instruments, inside one endpoint's registry."""

    def collect(self) -> Iterator[Any]:
        return iter(REGISTRY.collect())


def registry_for(services: KernelServices) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward())
    registry.register(KernelCollector(services, cas_usage(services)))
    return registry


class MetricsEndpoint:
    """``GET /metrics`` in the text exposition format, served on the kernel's own event loop."""

    def __init__(self, services: KernelServices, address: str) -> None:
        self.services = services
        self.requested = address
        self.address = address
        self.registry = registry_for(services)
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web  # imported only when --metrics is given

        host, _, port = self.requested.rpartition(":")
        app = web.Application()

        async def metrics(request: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def health(request: web.Request) -> web.Response:
            return web.Response(text="ok\n")

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]") or "127.0.0.1", int(port))
        await site.start()
        bound = self._runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.address = f"{shown}:{bound[1]}"
        log.info("event=metrics_listening addr=%s", self.address)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.shield(runner.cleanup())
