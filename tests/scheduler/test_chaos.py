"""Chaos: under a steady workload of events, timers and cross-host portal messages on real etcd,
a moto S3 server, two schedulers and three host kernels, host kernels and the leading scheduler
are killed with SIGKILL at random (and come back). Afterwards every acknowledged event is in its
world's journal, every world serves, no effect is settled twice, every timer fired once, and
every message an acknowledged event sent is in its receiver's journal once.

The kills are drawn from a seeded RNG; the seed is printed (and named in every failure), and
``AOS_CHAOS_SEED=N`` replays that schedule.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from aos.errors import KernelUnavailable
from aos.kernel.client import run
from aos.kernel.process import KernelStartError
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, SchedulerProcess, shared_storage_cluster, until
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle
from aos.kernel.world.records import decode_record
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
COUNTERS = 3  # counter worlds: events
TIMERS = 2  # hello-timer worlds: timers
PAIRS = 2  # portal pairs: world s<i> sends r<i> one message per event (placed apart: cross-host)
SCRIPT, SCRIPTED, PORTAL = "test/Script@1", "test/scripted@1", "sys/portal.send@1"
KILLS = 3  # chaos actions, each a host kernel or the leading scheduler
HOSTS = ("host0", "host1", "host2")
# what a send gets when its host stopped before committing it (its log was fenced by a host that took
# over one of its worlds): not journaled, and its world serves elsewhere
HOST_STOPPED = ("the journal write failed", "storage write failed",
                "the kernel's storage failed; it accepts no more writes")
# A killed host is restarted once its worlds serve elsewhere. AOS_CHAOS_QUICK_RESTART=1 also restarts
# some at once, during their own failover: the restarted host may reacquire a world the leader handed to
# another host, and its agent drops it locally once that host took it (docs/scheduler.md, "A host
# restarting during its own failover"; tests/scheduler/test_restart_during_failover.py makes it happen).
QUICK_RESTART = os.environ.get("AOS_CHAOS_QUICK_RESTART") == "1"


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("AOS_CHAOS_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"chaos seed {value} (AOS_CHAOS_SEED={value} replays it)")
    return value


@pytest.fixture
def cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    with shared_storage_cluster(etcd, moto_server, prefix="aosx-", hosts=3, schedulers=2, capacity=20,
                                host_args=[["--python-module", SCRIPTED_MODULE]] * 3) as c:
        yield c


@dataclass
class Ledger:
    """What the workload was told: acknowledged sends (world -> [(seq, id)]) and sends of unknown outcome."""

    acked: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: collections.defaultdict(list))
    unknown: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: list[str] = field(default_factory=list)


class Timeline(list[str]):
    """What the chaos did, each line with the seconds since it began (printed with every failure)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.retired: list[Any] = []  # host kernels killed or stopped, for their logs
        self.restarting: set[int] = set()  # hosts the chaos is bringing back (the supervisor leaves them)

    def note(self, text: str) -> None:
        self.append(f"{time.monotonic() - self.started:.1f}s {text}")


def portal_manifest() -> dict[str, Any]:
    """The scripted workflow (it emits the effects its event lists) with portal.send to its universe."""
    return {
        "version": 1,
        "name": "test/chaos-portal",
        "schemas": {**SCRIPTED_SCHEMAS, "sys/Any@1": "any",
                    "sys/PortalSend@1": {"record": {"dest_world": "text", "schema": "text", "value": "any"}}},
        "modules": {SCRIPTED: {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {SCRIPTED: {"module": SCRIPTED, "entry": "scripted", "state": "test/ScriptState@1",
                                 "event": SCRIPT, "effects": [PORTAL]}},
        "effects": {PORTAL: {"params": "sys/PortalSend@1", "receipt": "sys/Any@1", "cap": "portal"}},
        "grants": {"portal": {"cap": "portal"}},
        "routing": [{"event": SCRIPT, "workflow": SCRIPTED}],
    }


def event_for(world: str, n: int) -> tuple[str, dict[str, Any], str]:
    """The n-th event the workload sends ``world``, and the id it is found by in the journal
    (a sender's event sends its receiver a message with the same id)."""
    ident = f"{world}-{n}"
    if world.startswith("t"):
        return "demo/TimerStart@1", {"delay_ns": 300_000_000 + (n % 7) * 400_000_000, "key": ident}, ident
    if world.startswith("s"):
        message = {"dest_world": "r" + world[1:], "schema": SCRIPT, "value": {"id": ident}}
        return SCRIPT, {"id": ident, "effects": [{"effect": PORTAL, "params": message}]}, ident
    if world.startswith("r"):
        return SCRIPT, {"id": ident}, ident
    return "demo/CounterEvent@1", {"by": 1, "id": ident}, ident


STATE = {"c": "demo/counter@1", "t": "demo/hello-timer@1", "s": SCRIPTED, "r": SCRIPTED}


async def writer(cluster: LocalCluster, token: str, worlds: list[str], ledger: Ledger, stop: asyncio.Event) -> None:
    """Send each of ``worlds`` events in turn until ``stop``, through handles that follow the worlds."""
    async with await SchedulerSession.open(cluster.addresses, token, timeout=60) as s:
        handles = {w: s.follow("u", w, timeout=60) for w in worlds}
        n = 0
        while not stop.is_set():
            for world in worlds:
                schema, value, ident = event_for(world, n)
                try:
                    seq = await handles[world].send(schema, value)
                except KernelUnavailable:
                    ledger.unknown[world].append(ident)  # the host died under the call: journaled or not
                except Exception as exc:  # noqa: BLE001 -- anything else fails the test, below
                    ledger.unknown[world].append(ident)
                    if str(exc) not in HOST_STOPPED:
                        ledger.errors.append(f"{world} {ident}: {exc!r}")
                else:
                    ledger.acked[world].append((seq, ident))
            n += 1
            await asyncio.sleep(0.25)  # a steady pace, not a flood: the two cores run five daemons too


def leader_of(cluster: LocalCluster) -> SchedulerProcess:
    return next(p for p in cluster.scheduler_procs if p.proc is not None and p.proc.poll() is None and p.leads)


async def chaos(cluster: LocalCluster, rng: random.Random, token: str, log: Timeline) -> None:
    """KILLS random SIGKILLs, one at a time: a host kernel (restarted once its worlds serve on other
    hosts) or the leading scheduler (restarted on its address at once, to stand by)."""
    async with await SchedulerSession.open(cluster.addresses, token, timeout=60) as s:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            if rng.random() < 0.6:
                index, wait = rng.randrange(len(HOSTS)), rng.random() < 0.5 or not QUICK_RESTART
                await until(lambda i=index: _idle(log, i), what=f"the supervisor restarting {HOSTS[index]}")
                held = [w["worldId"] for w in await s.on_leader(_list_worlds) if w["hostId"] == HOSTS[index]]
                log.note(f"kill {HOSTS[index]} ({len(held)} worlds)" + (", restart once they serve elsewhere"
                                                                       if wait else ", restart at once"))
                log.restarting.add(index)
                cluster.kernels[index].kill()
                log.retired.append(cluster.kernels[index])

                async def gone(host: str = HOSTS[index]) -> bool:
                    status = await s.on_leader(lambda s: s.scheduler.status())
                    return host not in {h["hostId"] for h in status["hosts"]}

                if wait:
                    await until(gone, what=f"{HOSTS[index]} leaving")
                    for world in held:
                        await until(lambda w=world, h=HOSTS[index]: _serves_elsewhere(s, w, h),
                                    what=f"{world} serving elsewhere")
                    log.note(f"{HOSTS[index]} gone, its worlds serve elsewhere")
                await restart(cluster, index)
                log.restarting.discard(index)
                log.note(f"{HOSTS[index]} joined again")
            else:
                leader = await until(lambda: _leading(cluster), what="a leader")
                log.note(f"kill the leader {os.path.basename(leader.data_dir)}")
                os.kill(leader.pid, signal.SIGKILL)
                leader.proc.wait()  # type: ignore[union-attr]
                leader.listen = leader.address  # the same address: hosts and clients know it
                await asyncio.to_thread(leader.start)


async def restart(cluster: LocalCluster, index: int) -> None:
    """Start host ``index`` again, as often as it takes: opening its log can lose to a host fencing it
    (taking over a world of its killed generation), which stops the start; the next one goes on."""
    for attempt in range(5):
        try:
            kernel = await asyncio.to_thread(cluster.add_host, index)
            await asyncio.to_thread(cluster.wait_joined, kernel)
            return
        except (KernelStartError, AssertionError):
            if attempt == 4:
                raise


async def supervise(cluster: LocalCluster, log: Timeline, stop: asyncio.Event) -> None:
    """Start again a host kernel that stopped by itself (as Kubernetes would): a host whose log was
    fenced, because a world of its was taken over while it ran, stops rather than acknowledge more."""
    while not stop.is_set():
        for index, kernel in enumerate(cluster.kernels):
            if index not in log.restarting and kernel.proc is not None and kernel.proc.poll() is not None:
                log.note(f"{HOSTS[index]} stopped by itself ({kernel.proc.returncode}), restart")
                log.restarting.add(index)
                log.retired.append(kernel)
                await restart(cluster, index)
                log.restarting.discard(index)
                log.note(f"{HOSTS[index]} joined again")
        await asyncio.sleep(0.1)


async def _serves_elsewhere(s: SchedulerSession, world: str, host: str) -> bool:
    where = await s.on_leader(lambda s: _where(s, world))
    if where["state"] != "running" or where["hostId"] in ("", host):
        return False
    await (await s.open_world("u", world)).state(STATE[world[0]])
    return True


async def _where(s: SchedulerSession, world: str) -> dict[str, Any]:
    return await (await s.universe("u")).where(world)


async def _idle(log: Timeline, index: int) -> bool:
    return index not in log.restarting


async def _leading(cluster: LocalCluster) -> SchedulerProcess | None:
    try:
        return leader_of(cluster)
    except StopIteration:
        return None


@pytest.mark.timeout(300)  # ~30 s on a quiet 2-core machine; a busy one (other suites running) doubles it
def test_kills_of_hosts_and_the_leader_lose_nothing_acknowledged(cluster: LocalCluster, seed: int) -> None:
    counter_doc, counter_wasm = read_bundle(os.path.join(EXAMPLES, "counter"))
    timer_doc, timer_wasm = read_bundle(os.path.join(EXAMPLES, "hello-timer"))
    counters = [f"c{i}" for i in range(COUNTERS)]
    timers = [f"t{i}" for i in range(TIMERS)]
    senders, receivers = [f"s{i}" for i in range(PAIRS)], [f"r{i}" for i in range(PAIRS)]
    token = cluster.scheduler.admin_token
    rng = random.Random(seed)
    ledger, log = Ledger(), Timeline()

    async def main() -> dict[str, Any]:
        failure = ""
        try:
            return await chaotic()
        except Exception as exc:  # noqa: BLE001 -- reported below, as text
            failure = repr(exc)
        finally:
            gc.collect()  # here, on the loop's thread: see the gc.disable below
        # raised out here, the failure's frames (holding capabilities) are gone while the event loop
        # still runs; freed after it (by pytest, later) they would abort the process
        raise AssertionError(failure)

    async def chaotic() -> dict[str, Any]:
        async with await SchedulerSession.open(cluster.addresses, token, timeout=60) as s:
            await until(lambda: _hosts(s, 3), what="3 hosts")
            await s.scheduler.create_universe("u")
            universe = await s.universe("u")
            for world in counters:
                await universe.create_world(counter_doc, counter_wasm, world)
            for world in timers:
                await universe.create_world(timer_doc, timer_wasm, world)
            for i, (sender, receiver) in enumerate(zip(senders, receivers)):
                placed, _ = await universe.create_world(portal_manifest(), None, sender)
                there, _ = await universe.create_world(portal_manifest(), None, receiver)
                apart = HOSTS[(HOSTS.index(placed["hostId"]) + 1 + i % 2) % 3]
                if there["hostId"] != apart:  # cross-host from the start (the kills mix them later)
                    await s.scheduler.move("u", receiver, apart)
            await until(lambda: _settled(s), what="every world running")

            stop = asyncio.Event()
            groups = [[*counters[i::3], *timers[i::3], *senders[i::3]] for i in range(3)]
            writers = [asyncio.ensure_future(writer(cluster, token, g, ledger, stop)) for g in groups]
            settled = asyncio.Event()
            supervisor = asyncio.ensure_future(supervise(cluster, log, settled))
            try:
                await chaos(cluster, rng, token, log)
                await asyncio.sleep(0.5)  # some load on the cluster as the last kill left it
            finally:
                stop.set()
                await asyncio.gather(*writers)
                log.note(f"load stopped: {sum(map(len, ledger.acked.values()))} sends acknowledged, "
                         f"{sum(map(len, ledger.unknown.values()))} of unknown outcome")
            try:
                await until(lambda: _settled(s), what="every world running on one of 3 live hosts")
            finally:
                settled.set()
                await supervisor

            # every world serves: a send and a read through a fresh introduction
            found: dict[str, Any] = {}
            for world in counters + timers + senders + receivers:
                handle = s.follow("u", world, timeout=60)
                schema, value, ident = event_for(world, 10_000)
                ledger.acked[world].append((await handle.send(schema, value), ident))
                if world[0] in "ts":  # every timer fires (the longest is 2.7 s), every message goes out
                    await until(lambda h=handle: _all_settled(h), what=f"{world}'s effects settling")
                if world.startswith("r"):  # and arrives
                    sent = {i for _, i in ledger.acked["s" + world[1:]]}
                    await until(lambda h=handle, w=sent: _has_ids(h, w), what=f"{world}'s messages arriving")
                found[world] = (await whole_journal(handle), await handle.state(STATE[world[0]]))
            log.note("every world served")
            return found

    try:
        # the collector runs in whichever thread allocates: in a thread starting a kernel (or reading its
        # output) it would free capabilities off the event loop's thread, which aborts the process
        gc.disable()
        try:
            found = run(main())
        finally:
            gc.enable()
    except AssertionError as exc:
        raise AssertionError(f"chaos seed {seed} ({log}): {exc}") from None
    finally:  # shown when the test fails: the timeline, and what the hosts said about ownership
        print("\n".join(log))
        for kernel in [*log.retired, *cluster.kernels]:
            for line in kernel.log_lines:
                if any(word in line for word in ("level=critical", "level=error", "level=warning", "takeover=True")):
                    print(os.path.basename(kernel.data_dir), line[:300])
    context = f"chaos seed {seed} ({log})"
    assert not ledger.errors, f"{context}: {ledger.errors[:5]}"
    for world, (records, state) in found.items():
        events = [r for r in records if r.kind == "event"]
        idents = [r.value.get("key") if world.startswith("t") else r.value.get("id") for r in events]
        if world.startswith("r"):  # each message an acknowledged event sent is here once (never twice)
            sender = "s" + world[1:]
            sent = {i for _, i in ledger.acked[sender]}
            messages = [i for i in idents if i.startswith(sender)]
            assert sent <= set(messages), f"{context}: {world} lost messages {sorted(sent - set(messages))[:5]}"
            assert len(messages) == len(set(messages)), f"{context}: {world} got a message twice"
            assert set(messages) <= sent | set(ledger.unknown[sender])
            idents = [i for i in idents if not i.startswith(sender)]
            assert state["n"] == len(events), f"{context}: {world} {state}"
        # every acknowledged event is journaled where its seq said, once
        for seq, ident in ledger.acked[world]:
            record = records[seq]
            assert record.kind == "event" and ident in (record.value.get("id"), record.value.get("key")), \
                f"{context}: {world} lost acknowledged {ident} (seq {seq})"
        assert len(idents) == len(set(idents)), f"{context}: {world} journaled an event twice"
        assert set(idents) <= {i for _, i in ledger.acked[world]} | set(ledger.unknown[world])
        # no effect settled twice
        intents = {r.intent_hash for r in records if r.kind == "effect_intent"}
        receipts = collections.Counter(r.intent_hash for r in records if r.kind == "receipt")
        open_at = [(i, r.intent_hash[7:15]) for i, r in enumerate(records)
                   if r.kind == "effect_intent" and r.intent_hash not in receipts]
        assert set(receipts) == intents and all(n == 1 for n in receipts.values()), \
            f"{context}: {world} settled an effect twice or not at all: open {open_at}, of {len(records)} " \
            f"records, state {state}, twice {[h for h, n in receipts.items() if n > 1]}, " \
            f"tail {[(r.kind, getattr(r, 'intent_hash', '')[7:15]) for r in records[-12:]]}"
        if world.startswith("t"):
            assert state == {"started": len(events), "fired": len(events)}, f"{context}: {world} {state}"
            assert len(intents) == len(events)
        elif world.startswith("s"):
            assert len(intents) == len(events) and state["n"] == len(events) + len(receipts)
            assert all(r[:2] == [PORTAL, "ok"] for r in state["receipts"]), f"{context}: {world} {state}"
        elif world.startswith("c"):
            assert state == {"count": len(events)}, f"{context}: {world} {state}"
    assert sum(len(v) for v in ledger.acked.values()) > 5 * len(found), f"{context}: too little load to prove much"


async def whole_journal(handle: Any) -> list[Any]:
    records: list[Any] = []
    while True:
        raw, _ = await handle.read_raw(len(records), 4096)
        if not raw:
            return records
        records.extend(decode_record(r) for r in raw)


async def _settled(s: SchedulerSession) -> bool:
    status = await s.on_leader(lambda s: s.scheduler.status())
    worlds = await s.on_leader(lambda s: _list_worlds(s))
    return len(status["hosts"]) == 3 and all(w["state"] == "running" for w in worlds)


async def _list_worlds(s: SchedulerSession) -> list[dict[str, Any]]:
    return await (await s.universe("u")).list_worlds()


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n


async def _all_settled(handle: Any) -> bool:
    """Every effect intent in the journal has its receipt there."""
    records = await whole_journal(handle)
    intents = {r.intent_hash for r in records if r.kind == "effect_intent"}
    return intents <= {r.intent_hash for r in records if r.kind == "receipt"}


async def _has_ids(handle: Any, ids: set[str]) -> bool:
    records = await whole_journal(handle)
    return ids <= {r.value.get("id") for r in records if r.kind == "event"}


