"""Soak: repeated SIGKILLs under load. Slow; run with `./run test -m slow`."""

import os
import subprocess
import sys
import time

import pytest

from aos.kernel.client import Connection, run

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from crash_writer import record  # noqa: E402
from test_crash import _acked  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_crashes_in_a_row_lose_nothing(kernel, tmp_path):
    """Ten rounds of writers + SIGKILL + restart: every acknowledged record survives every crash, whole and in order."""
    acked: dict[str, int] = {}
    for round_no in range(10):
        ack_paths, procs = [], []
        for n in range(4):
            path = str(tmp_path / f"acks-{round_no}-{n}.log")
            ack_paths.append(path)
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "crash_writer.py"), kernel.address, kernel.admin_token,
                 f"r{round_no}w{n}", "8", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + 60
        while not all(os.path.exists(p) and os.path.getsize(p) > 5000 for p in ack_paths):
            assert time.monotonic() < deadline, "writers made no progress"
            time.sleep(0.02)
        kernel.kill()
        for proc in procs:
            assert proc.wait(60) == 0, proc.stderr.read().decode()[-2000:]
        for path in ack_paths:
            acked.update(_acked(path))
        kernel.start()

    async def verify():
        async with await Connection.open(kernel.address) as conn:
            journal = await (await conn.restore_kernel(kernel.admin_token)).journal("crash")
            for world, count in acked.items():
                records, next_seq = await journal.read(world, 0, 0)
                assert next_seq >= count, f"{world}: {count} acknowledged, {next_seq} present"
                assert records == [record(world, seq) for seq in range(len(records))], world

    run(verify())
