"""Shared-storage benchmarks: the fenced S3 log, world hand-over and cold reads, as ratios to a raw boto3 PUT.

Run: ``.venv/bin/python -m pytest bench/bench_storage.py -q`` (about a
minute). Layout: one moto S3 server (``aos.kernel.storage.testing``) in its
own process on 127.0.0.1, the client in the pytest process, one request at a
time (a host's log is written by one thread, one turn after another). Every
figure runs ``ROUNDS`` times and the fastest round counts; the baseline, a
raw ``boto3`` ``put_object`` of 1 KiB to the same server, runs *alongside*
(one round before each timed round) and the ratio uses it, so load changes on
a shared machine cancel out.

Figures:

- ``s3.put``: raw boto3 PUT of 1 KiB, latency p50 (ms) and PUTs/s: the baseline.
- ``s3.log.append``: ``LogWriter.append`` of one turn of 100 records of 100
  bytes (conditional PUT of one object): p50 and p99 latency, records/s.
- ``local.log.append``: the same turn through the local directory backend
  (fsynced file, rename, fsynced directory).
- ``s3.cold_read``: ``WorldHeads.history`` of one world (1,000 records: one
  segment plus a 10-turn log tail) by a fresh handle with a cold cache.
- ``s3.handover``: release on host A plus acquire on host B, p50 (issue
  target: at most 200 ms against a local S3 server).
- ``s3.takeover``: acquiring a world its owner did not release (recover its
  tail from the owner's log, flush a segment, move the head), p50. The
  owner's log is fenced by the first takeover; later ones find the fence.
- ``s3.requests``: S3 requests per 1,000 events at 100 busy worlds (one log
  object per turn, a checkpoint per world every 256 records); target <= 20.

``AOS_BENCH_SCALE`` scales the call counts, ``AOS_BENCH_ROUNDS`` the repetitions.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import benchlib
import boto3
import pytest
from benchlib import Figures, Result, Target

from aos.kernel.storage import LocalObjects, ObjectLogs, ObjectStore, RequestCounter, WorldHeads
from aos.kernel.storage.layout import journal_op
from aos.kernel.storage.objects import S3Objects, make_client
from aos.kernel.storage.testing import MotoServer

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
ROUNDS = int(os.environ.get("AOS_BENCH_ROUNDS", "3"))
RECORD = 100
TURN = 100  # records per log object: 100 busy worlds, one event each


def n(base: int) -> int:
    return max(5, int(base * SCALE))


class S3Bench:
    """The moto server, one bucket, and fresh handles on it."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.raw = boto3.client("s3")
        self.raw.create_bucket(Bucket=self.bucket)

    def store(self, counter: RequestCounter | None = None) -> S3Objects:
        return S3Objects(make_client(), self.bucket, f"run-{uuid.uuid4().hex[:8]}", counter)

    @property
    def pid(self) -> int | None:
        return self.server.proc.pid if self.server.proc is not None else None


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Bench]:
    """A moto server for this module, with the standard AWS variables pointing at it."""
    server = MotoServer().start()
    try:
        with server.environ():
            yield S3Bench(server)
    finally:
        server.stop()


def timed(call: Callable[[], Any], count: int, items: int = 1, server_pid: int | None = None) -> Result:
    """``count`` sequential calls, each timed; server CPU over the run when ``server_pid`` is given."""
    latencies = []
    server0 = benchlib.process_cpu(server_pid) if server_pid else 0.0
    client0 = benchlib.process_cpu()
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    server = benchlib.process_cpu(server_pid) - server0 if server_pid else None
    return Result(count, seconds, 1, items, latencies, server, benchlib.process_cpu() - client0)


def measure(benchmark: Any, once: Callable[[], Result], alongside: Callable[[], Result]) -> tuple[Result, Result]:
    """Fastest of ``ROUNDS`` rounds of ``once``, each after an untimed round of the baseline ``alongside``."""
    results: list[Result] = []
    baseline: list[Result] = []
    benchmark.pedantic(lambda: results.append(once()), setup=lambda: baseline.append(alongside()),
                       rounds=ROUNDS, iterations=1)
    benchmark.extra_info["rounds_rate"] = [round(r.rate, 1) for r in results]
    return benchlib.best(results), benchlib.best(baseline)


def raw_puts(s3: S3Bench) -> Result:
    body = os.urandom(1024)
    keys = iter(range(1 << 30))
    prefix = uuid.uuid4().hex[:8]
    return timed(lambda: s3.raw.put_object(Bucket=s3.bucket, Key=f"raw/{prefix}/{next(keys)}", Body=body),
                 n(200), server_pid=s3.pid)


def ms(seconds: float) -> float:
    return seconds * 1e3


def turn_ops(first: int) -> list[Any]:
    payload = os.urandom(RECORD)
    return [journal_op("bench", f"w{i:03d}", first, payload) for i in range(TURN)]


def log_appends(store: ObjectStore, count: int, pid: int | None) -> Result:
    log = f"host-{uuid.uuid4().hex[:8]}"
    writer = ObjectLogs(store).open(log, log)
    turns = iter(range(1 << 30))
    ops = {k: turn_ops(k) for k in range(4)}
    return timed(lambda: writer.append(ops[next(turns) % 4]), count, TURN, pid)


# --- the baseline -------------------------------------------------------------------------------


def test_raw_put(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """Raw boto3 put_object of 1 KiB to the moto server, one at a time: the baseline for every ratio."""
    results: list[Result] = []
    benchmark.pedantic(lambda: results.append(raw_puts(s3)), rounds=ROUNDS, iterations=1)
    best = benchlib.best(results)
    figures.record("s3.put.p50", "raw boto3 PUT 1 KiB, latency p50", ms(best.percentile(50)), "ms",
                   result=best, benchmark=benchmark)
    figures.record("s3.put.rate", "raw boto3 PUT 1 KiB", best.rate, "PUTs/s", benchmark=benchmark)


# --- the log ------------------------------------------------------------------------------------


def test_s3_log_append(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """One turn (100 records) per conditional PUT through the fenced S3 log."""
    result, raw = measure(benchmark, lambda: log_appends(s3.store(), n(150), s3.pid), lambda: raw_puts(s3))
    raw_p50 = ms(raw.percentile(50))
    figures.record("s3.log.append.p50", "S3 log append of a 100-record turn, p50", ms(result.percentile(50)), "ms",
                   baseline="s3.put.p50", paired=raw_p50, target=Target("ratio", "<=", 1.5), result=result,
                   benchmark=benchmark)
    figures.record("s3.log.append.p99", "S3 log append of a 100-record turn, p99", ms(result.percentile(99)), "ms",
                   baseline="s3.put.p50", paired=raw_p50, benchmark=benchmark)
    figures.record("s3.log.records", "S3 log, records acknowledged", result.items_rate, "records/s",
                   baseline="s3.put.rate", paired=raw.rate, note="ratio = records per raw PUT time",
                   benchmark=benchmark)


def test_local_log_append(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """The same turns through the local directory backend (fsync per object), against the same raw S3 PUT."""
    with tempfile.TemporaryDirectory(prefix="aos-bench-store-", dir="/tmp") as path:
        result, raw = measure(benchmark, lambda: log_appends(LocalObjects(path), n(150), None), lambda: raw_puts(s3))
    raw_p50 = ms(raw.percentile(50))
    figures.record("local.log.append.p50", "local log append of a 100-record turn, p50", ms(result.percentile(50)),
                   "ms", baseline="s3.put.p50", paired=raw_p50, result=result, benchmark=benchmark)
    figures.record("local.log.append.p99", "local log append of a 100-record turn, p99", ms(result.percentile(99)),
                   "ms", baseline="s3.put.p50", paired=raw_p50, benchmark=benchmark)
    figures.record("local.log.records", "local log, records acknowledged", result.items_rate, "records/s",
                   baseline="s3.put.rate", paired=raw.rate, benchmark=benchmark)


# --- worlds -------------------------------------------------------------------------------------


def host(store: ObjectStore, name: str) -> WorldHeads:
    logs = ObjectLogs(store)
    return WorldHeads(store, logs, logs.open(name, name))


def cold_reads(s3: S3Bench) -> Result:
    store = s3.store()
    a = host(store, "host-a")
    worlds = [a.acquire("bench", f"w{i}") for i in range(n(20))]
    for own in worlds:
        a.commit_turn({own: [os.urandom(RECORD) for _ in range(990)]})
    for own in worlds:
        a.checkpoint(own)  # after all the big turns, so no world's tail holds another's
    for turn in range(10):
        a.commit_turn({own: [os.urandom(RECORD)] for own in worlds})
    names = iter([own.world for own in worlds])

    def read() -> None:
        # fresh heads per read: no cached log batches, like a kernel that just started
        history = WorldHeads(store).history("bench", next(names))
        assert len(history.records) == 1000

    return timed(read, len(worlds), server_pid=s3.pid)


def test_cold_read(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """A world's whole history (1,000 records: a segment and a 10-turn tail) read cold from S3."""
    result, raw = measure(benchmark, lambda: cold_reads(s3), lambda: raw_puts(s3))
    figures.record("s3.cold_read.p50", "cold read of a 1,000-record world from S3, p50", ms(result.percentile(50)),
                   "ms", baseline="s3.put.p50", paired=ms(raw.percentile(50)), result=result, benchmark=benchmark)


def handovers(s3: S3Bench, steal: bool) -> Result:
    store = s3.store()
    hosts = [host(store, "host-a"), host(store, "host-b")]
    count = n(40)
    for i in range(count):
        own = hosts[0].acquire("bench", f"w{i}")
        hosts[0].commit_turn({own: [os.urandom(RECORD) for _ in range(10)]})
    worlds = iter(range(count))

    def move() -> None:
        i = next(worlds)
        if not steal:
            own = hosts[0].owned("bench", f"w{i}")
            assert own is not None
            hosts[0].release(own)
        hosts[1].acquire("bench", f"w{i}")

    return timed(move, count, server_pid=s3.pid)


def test_handover(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """Release on host A (flush + head) then acquire on host B (head): a planned move of one world."""
    result, raw = measure(benchmark, lambda: handovers(s3, steal=False), lambda: raw_puts(s3))
    figures.record("s3.handover.p50", "hand-over (release + acquire), p50", ms(result.percentile(50)), "ms",
                   baseline="s3.put.p50", paired=ms(raw.percentile(50)), target=Target("value", "<=", 200),
                   result=result, benchmark=benchmark)


def test_takeover(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """Acquire without a release: fence the owner's log, recover the world's tail, flush it, move the head."""
    result, raw = measure(benchmark, lambda: handovers(s3, steal=True), lambda: raw_puts(s3))
    figures.record("s3.takeover.p50", "takeover of an unreleased world from a dead host, p50", ms(result.percentile(50)), "ms",
                   baseline="s3.put.p50", paired=ms(raw.percentile(50)), result=result, benchmark=benchmark)


def test_requests_per_thousand_events(benchmark: Any, figures: Figures, s3: S3Bench) -> None:
    """S3 requests per 1,000 events at 100 busy worlds: one log object per turn, a checkpoint per world every 256 records."""
    worlds, turns, every = 100, 300, 256

    def run() -> float:
        counter = RequestCounter()
        heads = host(s3.store(counter), "host-a")
        owns = [heads.acquire("bench", f"w{i}") for i in range(worlds)]
        before = counter.total
        for turn in range(turns):
            heads.commit_turn({own: [b"e"] for own in owns})
            if (turn + 1) % every == 0:
                for own in owns:
                    heads.checkpoint(own)
        return (counter.total - before) * 1000 / (worlds * turns)

    values: list[float] = []
    benchmark.pedantic(lambda: values.append(run()), rounds=1, iterations=1)
    figures.record("s3.requests", "S3 requests per 1,000 events, 100 busy worlds", values[0], "requests",
                   target=Target("value", "<=", 20), note="log + checkpoints", benchmark=benchmark)
