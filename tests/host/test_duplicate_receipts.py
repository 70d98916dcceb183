"""Two copies of one receipt that reach a world together (two inbox copies of one timer firing
after a restart, an effect restarted while its first run still answers) settle the intent once:
the second is consumed, never journaled. The check runs in apply order, so copies that both
passed the early check in ``deliver_receipt`` cannot both land.
"""

from __future__ import annotations

import asyncio
import collections
import os

from aos.adapters.base import Receipt
from aos.kernel.client import run
from aos.kernel.config import KernelConfig
from aos.kernel.host.registry import journal_universe
from aos.kernel.server import KernelServer
from aos.kernel.world.records import EffectIntentRecord, ReceiptRecord, decode_record
from tests.host.worldkit import bundle


async def _journal(server: KernelServer, world: str) -> list[object]:
    assert server.services is not None
    blobs, _ = server.services.journal.read(journal_universe("u"), world, 0, 1000)
    return [decode_record(b) for b in blobs]


def test_two_copies_of_one_receipt_settle_the_intent_once(tmp_path) -> None:
    doc, wasm = bundle("hello-timer")

    async def main() -> tuple[list[object], object]:
        server = KernelServer(KernelConfig(data_dir=str(tmp_path / "k"), listen=[f"unix:{tmp_path / 'k.sock'}"],
                                           health=""))
        await server.start()
        try:
            assert server.services is not None
            host = server.services.worlds
            await host.create("u", doc, wasm, "t")
            # an hour away: only the copies below settle it
            await host.send("u", "t", "demo/TimerStart@1", {"delay_ns": 3_600_000_000_000, "key": "k"})
            driver = await host.driver("u", "t")
            intent = next(r for r in await _journal(server, "t") if isinstance(r, EffectIntentRecord))
            receipt = Receipt.ok(delivered_at_ns=intent.params["deliver_at_ns"], key="k")
            await asyncio.gather(*(driver.deliver_receipt(intent.intent_hash, receipt) for _ in range(3)))
            state = driver.world.state("demo/hello-timer@1")
            return await _journal(server, "t"), state
        finally:
            await server.stop()

    records, state = run(main())  # the KJ loop pycapnp needs around asyncio
    receipts = collections.Counter(r.intent_hash for r in records if isinstance(r, ReceiptRecord))
    assert list(receipts.values()) == [1]
    assert state == {"started": 1, "fired": 1}
