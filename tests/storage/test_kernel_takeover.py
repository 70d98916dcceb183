"""A host lost with its disk: real kernels on a real S3 server (moto).

Kernel A serves a world on shared storage; events are acknowledged, a blob
is stored, a timer is pending and an HTTP request is in flight. A is killed
with SIGKILL and its data directory deleted. Kernel B, on a fresh directory
and the same bucket, acquires the world (fencing A's log) and serves it with
every acknowledged event, byte for byte; the timer fires on B, the request
is made again with the same idempotency key and settles once, and the whole
journal replays to the live state.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator

import pytest

from aos.errors import Fenced, WorldMoved
from aos.kernel.client import run
from aos.kernel.storage import LogWriter, ObjectLogs, StorageConfig
from aos.kernel.world import decode_record

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernelkit import (  # noqa: E402
    SCRIPT, UNIVERSE, WORKFLOW, GatedServer, Session, assert_replays, data_dir, effect, intents_and_receipts, manifest,
    raw_journal, storage_kernel, wait_for,
)


@pytest.fixture
def server() -> Iterator[GatedServer]:
    http = GatedServer()
    try:
        yield http
    finally:
        http.close()


def test_a_world_survives_its_host_and_disk(bucket: str, server: GatedServer) -> None:
    """Everything A acknowledged is served by B after A's SIGKILL and disk loss; timer, blob and HTTP intent settle once."""
    url = f"s3://{bucket}/cluster"
    dir_a, dir_b = data_dir(), data_dir()
    a = storage_kernel(dir_a, url, "host-a").start()
    b = None
    try:
        acked: list[int] = []
        before_kill: dict[str, object] = {}

        async def on_a() -> None:
            async with Session(a) as s:
                world, _ = await s.worlds.create(manifest(), {}, "w")
                for n in range(20):
                    acked.append(await world.send(SCRIPT, {"id": f"k{n % 3}"}))
                acked.append(await world.send(SCRIPT, {"id": "blob", "effects": [effect("blob.put", data=b"travels")]}))
                await wait_for(lambda: _receipts_for(world, "blob"))
                cas = await s.admin.cas(UNIVERSE)
                before_kill["address"] = await cas.put(b"a blob stored through A's CAS")
                due = time.time_ns() + 4_000_000_000  # pending when A dies: A is killed right after the acks below
                acked.append(await world.send(SCRIPT, {"id": "timer", "effects": [
                    effect("timer.set", deliver_at_ns=due, key="after-the-move")]}))
                acked.append(await world.send(SCRIPT, {"id": "web", "effects": [
                    effect("http.request", method="GET", url=server.url("/in-flight"), send_idempotency_key=True)]}))
                await wait_for(lambda: _hit(server, "/in-flight"))  # A's adapter is waiting on the server now
                before_kill["journal"] = await raw_journal(s.admin, UNIVERSE, "w")

        run(on_a())
        a.kill()
        shutil.rmtree(dir_a)

        b = storage_kernel(dir_b, url, "host-b").start()

        async def on_b() -> tuple[dict, list, str]:
            async with Session(b) as s:
                with pytest.raises(WorldMoved, match="held by host host-a"):
                    await s.worlds.acquire("w")  # A never released it: only a takeover may take it
                info, placement = await s.worlds.acquire("w", take_over=True)
                assert placement["host"] == "host-b" and placement["previous"] == "host-a"
                server.gate.set()  # the restarted request may now be answered
                world = await s.worlds.open("w")

                async def settled() -> list | None:
                    records = [decode_record(r) for r in await raw_journal(s.admin, UNIVERSE, "w")]
                    intents, receipts = intents_and_receipts(records)
                    return records if len(intents) == 3 and intents <= set(receipts) else None

                records = await wait_for(settled, timeout=60)
                cas = await s.admin.cas(UNIVERSE)
                blob = await cas.get(str(before_kill["address"]))
                live = await assert_replays(s.admin, UNIVERSE, world, "w", manifest(), {})
                return placement, records, blob, live

        placement, records, blob, _ = run(on_b())
        journal_at_kill: list[bytes] = before_kill["journal"]  # type: ignore[assignment]

        async def now_raw() -> list[bytes]:
            async with Session(b) as s:
                return await raw_journal(s.admin, UNIVERSE, "w")

        raw = run(now_raw())
        assert raw[: len(journal_at_kill)] == journal_at_kill  # every record A had, byte for byte
        for seq in acked:
            assert records[seq].kind == "event"
        intents, receipts = intents_and_receipts(records)
        assert all(receipts[h] == 1 for h in intents), "an intent settled twice"
        timer = next(r for r in records if r.kind == "effect_intent" and r.effect == "sys/timer.set@1")
        fired = next(i for i, r in enumerate(records) if r.kind == "receipt" and r.intent_hash == timer.intent_hash)
        assert fired >= placement["journalHeight"], "the timer fired before the move"
        web = next(r for r in records if r.kind == "effect_intent" and r.effect == "sys/http.request@1")
        keys = server.keys["/in-flight"]
        assert len(keys) >= 2 and set(keys) == {web.idempotency_key}  # A's request, then B's, one key
        assert blob == b"a blob stored through A's CAS"

        # A's log was fenced by the takeover: a zombie A could never append again
        logs = ObjectLogs(StorageConfig.from_url(url).open())
        head = logs.head("host-a")
        assert head is not None and head.owner is None and head.epoch == 2
        zombie = LogWriter(logs.objects, "host-a", 1, "host-a", head.fence_seq)  # A's generation, at its next slot
        with pytest.raises(Fenced):
            zombie.append([])
    finally:
        a.kill()
        if b is not None:
            b.kill()
        shutil.rmtree(dir_b, ignore_errors=True)


async def _receipts_for(world, key: str) -> bool:
    state = await world.state(WORKFLOW, key)
    return bool(state and state["receipts"])


async def _hit(server: GatedServer, path: str) -> bool:
    return server.hits[path] > 0
