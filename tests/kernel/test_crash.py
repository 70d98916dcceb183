"""SIGKILL during heavy appends loses no acknowledged record and leaves no partial one."""

import os
import subprocess
import sys
import time

from aos.kernel.client import Connection, run

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from crash_writer import record  # noqa: E402


def _acked(path: str) -> dict[str, int]:
    """world -> number of records acknowledged (complete lines only)."""
    acked: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                continue  # the writer died mid-line: that ack was never complete
            world, first, count = line.split()
            assert int(first) == acked.get(world, 0), "acks must be gap-free per world"
            acked[world] = int(first) + int(count)
    return acked


def test_sigkill_while_many_clients_append_loses_nothing_acknowledged(kernel, tmp_path):
    """6 writer processes x 16 worlds append until SIGKILL; after restart every ack is there, in order, whole."""
    writers, worlds_each = 6, 16
    procs, ack_paths = [], []
    for n in range(writers):
        ack_path = str(tmp_path / f"acks-{n}.log")
        ack_paths.append(ack_path)
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.join(HERE, "crash_writer.py"), kernel.address, kernel.admin_token, f"p{n}", str(worlds_each), ack_path],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    # kill once every writer has been acknowledged a good number of times
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(os.path.exists(p) and os.path.getsize(p) > 20000 for p in ack_paths):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("writers made no progress")
    kernel.kill()
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read().decode()[-2000:]

    acked: dict[str, int] = {}
    for path in ack_paths:
        acked.update(_acked(path))
    assert len(acked) == writers * worlds_each and sum(acked.values()) > 500

    kernel.start()

    async def read_all():
        async with await Connection.open(kernel.address) as conn:
            journal = await (await conn.restore_kernel(kernel.admin_token)).journal("crash")
            out = {}
            for world in acked:
                records, next_seq = await journal.read(world, 0, 0)
                while len(records) < next_seq:
                    more, next_seq = await journal.read(world, len(records), 0)
                    records += more
                out[world] = records
            return out

    journals = run(read_all())
    for world, count in acked.items():
        records = journals[world]
        assert len(records) >= count, f"{world}: {count} acknowledged, {len(records)} present"
        # every record present, acknowledged or not, is whole and in its place
        assert records == [record(world, seq) for seq in range(len(records))], world
