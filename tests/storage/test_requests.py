"""What shared storage costs in S3 requests (object stores bill per request):
100 busy worlds writing through one host's log, one log object per turn,
with periodic per-world checkpoints, must stay within 20 requests per 1,000
events; a cold read of one world must not grow with the other worlds.
"""

from __future__ import annotations

from aos.kernel.storage import ObjectLogs, RequestCounter, WorldHeads
from aos.kernel.storage.testing import Backend

WORLDS = 100
TURNS = 300  # each turn carries one event from every world: 30,000 events
CHECKPOINT_EVERY = 256  # records per world between checkpoints


def test_requests_per_thousand_events_at_100_busy_worlds(s3_backend: Backend) -> None:
    """At 100 busy worlds the log costs one PUT per turn, and with checkpoints the total stays <= 20 per 1,000 events."""
    counter = RequestCounter()
    store = s3_backend.open(counter)
    logs = ObjectLogs(store)
    heads = WorldHeads(store, logs, logs.open("host-a", "host-a"))
    owns = [heads.acquire("u", f"w{i:03d}") for i in range(WORLDS)]
    setup = counter.snapshot()

    events = 0
    since_checkpoint = {own: 0 for own in owns}
    for turn in range(TURNS):
        heads.commit_turn({own: [f"{own.world}:{turn}".encode()] for own in owns})
        events += WORLDS
        for own in owns:
            since_checkpoint[own] += 1
            if since_checkpoint[own] >= CHECKPOINT_EVERY:
                heads.checkpoint(own)
                since_checkpoint[own] = 0
    used = counter.since(setup)

    per_thousand = sum(used.values()) * 1000 / events
    log_puts = TURNS
    checkpoints = WORLDS * (TURNS // CHECKPOINT_EVERY)
    # exactly: one log object per turn, one segment and one head per checkpoint, nothing else
    assert used == {"PutObject": log_puts + 2 * checkpoints}
    assert per_thousand <= 20, f"{per_thousand:.1f} requests per 1,000 events ({used})"
    print(f"\n{per_thousand:.2f} S3 requests per 1,000 events at {WORLDS} busy worlds "
          f"(log only: {log_puts * 1000 / events:.2f}); acquiring {WORLDS} worlds cost {sum(setup.values())}")


def test_a_cold_read_does_not_grow_with_other_worlds(s3_backend: Backend) -> None:
    """Reading one checkpointed world costs the same few requests with 1 or 50 other worlds on the host."""
    costs = []
    for worlds in (1, 50):
        store = s3_backend.open()
        logs = ObjectLogs(store)
        host = f"host-{worlds}"
        heads = WorldHeads(store, logs, logs.open(host, host))
        owns = [heads.acquire(host, f"w{i}") for i in range(worlds)]
        for turn in range(5):
            heads.commit_turn({own: [f"{turn}".encode()] for own in owns})
        heads.checkpoint(owns[0])
        counter = RequestCounter()
        history = WorldHeads(s3_backend.open(counter)).history(host, "w0")
        assert history.records == tuple(f"{t}".encode() for t in range(5))
        costs.append(counter.snapshot())
    assert costs[0] == costs[1] == {"GetObject": 2, "ListObjectsV2": 2}
