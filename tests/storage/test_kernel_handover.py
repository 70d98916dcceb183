"""Hand-over between two real kernels on a real S3 server (moto), through the CLI.

While senders keep sending to kernel A and an HTTP request and a timer of
the world are in flight, ``aos world release`` hands the world over and
``aos world acquire`` takes it on kernel B. Nothing acknowledged is lost or
doubled, every later send to A gets ``WorldMoved`` naming B and where it
listens, the effects settle once on B, and ``aos world ls`` says where
the world is on each kernel.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator

import pytest

from aos.errors import WorldMoved
from aos.kernel.client import run
from aos.kernel.world import decode_record

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernelkit import (  # noqa: E402
    SCRIPT, UNIVERSE, GatedServer, Session, assert_replays, data_dir, effect, intents_and_receipts, manifest,
    raw_journal, storage_kernel, wait_for,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENDERS = 6


@pytest.fixture
def server() -> Iterator[GatedServer]:
    http = GatedServer()
    try:
        yield http
    finally:
        http.close()


async def aos(kernel, *args: str) -> tuple[int, str, str]:
    """``aos ARGS`` as a user runs it, against ``kernel`` (without blocking the event loop)."""
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path, AOS_UNIVERSE=UNIVERSE)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "aos.cli", *args, cwd=REPO, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def test_hand_over_with_events_and_effects_in_flight(bucket: str, server: GatedServer) -> None:
    """Release on A and acquire on B mid-traffic lose and double nothing; A then says where the world went."""
    url = f"s3://{bucket}/handover"
    dir_a, dir_b = data_dir(), data_dir()
    a = storage_kernel(dir_a, url, "host-a").start()
    b = storage_kernel(dir_b, url, "host-b").start()
    b_tcp = next(x for x in b.addresses if x.startswith("tcp:"))
    try:
        async def scenario() -> dict:
            out: dict = {"acked": [], "refused": []}
            async with Session(a) as sa, Session(b) as sb:
                world, _ = await sa.worlds.create(manifest(), {}, "w")
                await world.send(SCRIPT, {"id": "web", "effects": [
                    effect("http.request", method="GET", url=server.url("/slow"), send_idempotency_key=True)]})
                await world.send(SCRIPT, {"id": "timer", "effects": [
                    effect("timer.set", deliver_at_ns=time.time_ns() + 1_500_000_000, key="t")]})
                await wait_for(lambda: _hit(server, "/slow"))  # the request is in flight on A

                async def sender(n: int) -> None:
                    i = 0
                    while True:
                        try:
                            out["acked"].append(await world.send(SCRIPT, {"id": f"s{n}"}))
                        except WorldMoved as exc:
                            out["refused"].append(str(exc))
                            return
                        i += 1

                senders = [asyncio.ensure_future(sender(n)) for n in range(SENDERS)]
                await wait_for(lambda: _at_least(out["acked"], 30))
                out["release"] = await aos(a, "world", "release", "w")
                await asyncio.wait_for(asyncio.gather(*senders), 30)
                out["ls_a_released"] = await aos(a, "world", "ls")
                try:
                    await world.send(SCRIPT, {"id": "late"})
                except WorldMoved as exc:
                    out["before_acquire"] = str(exc)
                out["acquire"] = await aos(b, "world", "acquire", "w")
                try:
                    await world.send(SCRIPT, {"id": "later"})
                except WorldMoved as exc:
                    out["after_acquire"] = str(exc)
                server.gate.set()
                wb = await sb.worlds.open("w")
                out["on_b"] = await wb.send(SCRIPT, {"id": "on-b"})

                async def settled() -> list | None:
                    records = [decode_record(r) for r in await raw_journal(sb.admin, UNIVERSE, "w")]
                    intents, receipts = intents_and_receipts(records)
                    return records if len(intents) == 2 and intents <= set(receipts) else None

                out["records"] = await wait_for(settled, timeout=60)
                await assert_replays(sb.admin, UNIVERSE, wb, "w", manifest(), {})
                out["ls_a"] = await aos(a, "world", "ls", "--json")
                out["ls_b"] = await aos(b, "world", "ls", "--json")
            return out

        out = run(scenario())
        code, stdout, stderr = out["release"]
        assert code == 0, stderr
        assert stdout.startswith("world w released:")
        code, stdout, stderr = out["acquire"]
        assert code == 0, stderr
        assert stdout.startswith("world w acquired by host host-b (it was released)")
        assert len(out["refused"]) == SENDERS  # every sender stopped at the release, with the typed error
        assert all("released by this kernel (host host-a)" in r or "being released" in r for r in out["refused"])
        assert "released by this kernel (host host-a)" in out["before_acquire"]
        assert f"held by host host-b at {b_tcp}" in out["after_acquire"]

        records = out["records"]
        events = [i for i, r in enumerate(records) if r.kind == "event"]
        sent = sorted(out["acked"] + [out["on_b"]])
        assert len(set(sent)) == len(sent)  # no position acknowledged twice
        assert all(records[seq].kind == "event" for seq in sent)
        assert len(events) == len(sent) + 2  # + the web and timer events: nothing journaled but what was acked
        intents, receipts = intents_and_receipts(records)
        assert all(receipts[h] == 1 for h in intents)

        assert "released" in out["ls_a_released"][1]
        rows_a = {w["worldId"]: w for w in json.loads(out["ls_a"][1])["worlds"]}
        rows_b = {w["worldId"]: w for w in json.loads(out["ls_b"][1])["worlds"]}
        assert rows_a["w"]["released"] is True
        assert rows_b["w"]["released"] is False and rows_b["w"]["journalHeight"] > len(records)  # + the replay check's snapshot
    finally:
        a.kill()
        b.kill()
        shutil.rmtree(dir_a, ignore_errors=True)
        shutil.rmtree(dir_b, ignore_errors=True)


async def _hit(server: GatedServer, path: str) -> bool:
    return server.hits[path] > 0


async def _at_least(items: list, n: int) -> bool:
    return len(items) >= n
