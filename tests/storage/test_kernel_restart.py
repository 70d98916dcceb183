"""A kernel on shared storage restarting on its own data directory, and the start-up mistakes it refuses.

The crash that matters is the one between a turn's log PUT and its RocksDB
write: the turn is in S3 (so it may have been acknowledged) but not on the
disk. A test hook makes a real kernel die by SIGKILL exactly there; the next
start must replay that turn from the log before it serves anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aos.errors import AosError
from aos.kernel.client import run
from aos.kernel.storage import StorageConfig, WorldHeads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernelkit import SCRIPT, UNIVERSE, Session, data_dir, decoded_journal, manifest, storage_kernel  # noqa: E402


@pytest.fixture
def path() -> Iterator[str]:
    folder = data_dir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_restart_replays_the_turn_s3_has_and_rocksdb_lacks(bucket: str, path: str) -> None:
    """A turn in the log but not in RocksDB at a crash is in the journal after the restart; the world goes on."""
    url = f"s3://{bucket}/restart"
    kernel = storage_kernel(path, url, "host-r").start()
    try:
        async def first() -> list[int]:
            async with Session(kernel) as s:
                world, _ = await s.worlds.create(manifest(), {}, "w")
                return [await world.send(SCRIPT, {"id": f"k{n}"}) for n in range(5)]

        acked = run(first())
        assert kernel.stop() == 0
        kernel.env = dict(os.environ, AOS_TEST_CRASH_AFTER_LOG_APPENDS="1")  # the next turn dies after its PUT
        kernel.start()

        async def doomed() -> None:
            async with Session(kernel) as s:
                world = await s.worlds.open("w")
                with pytest.raises(AosError):  # never acknowledged: the kernel died first
                    await world.send(SCRIPT, {"id": "in-s3-only"})

        run(doomed())
        assert kernel.proc is not None and kernel.proc.wait(30) == -9
        kernel.env = None
        kernel.start()
        assert any("event=storage_open" in line and "replayed=1" in line for line in kernel.log_lines)

        async def after() -> tuple[list, int]:
            async with Session(kernel) as s:
                world = await s.worlds.open("w")
                seq = await world.send(SCRIPT, {"id": "after"})
                return await decoded_journal(s.admin, UNIVERSE, "w"), seq

        records, last = run(after())
        events = [r for r in records if r.kind == "event"]
        assert [e.value["id"] for e in events] == ["k0", "k1", "k2", "k3", "k4", "in-s3-only", "after"]
        assert all(records[seq].kind == "event" for seq in acked + [last])
        head = WorldHeads(StorageConfig.from_url(url).open()).head(UNIVERSE, "w")
        assert head is not None and head.owner == "host-r" and head.epoch == 3  # created, then two restarts
    finally:
        kernel.kill()


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.kernel.daemon", *args], capture_output=True, text=True,
                          timeout=60, env=env or dict(os.environ))


def test_start_up_mistakes_are_one_line(bucket: str, path: str) -> None:
    """Bad storage URLs, a host id without storage, and data directories of another kind or host are refused in one line."""
    listen = ["--listen", f"unix:{path}/k.sock"]
    bad_url = _start("--data", path, *listen, "--storage", "s3://Bad_Bucket/x")
    assert bad_url.returncode == 1 and bad_url.stderr.strip().startswith("aos-kernel: bad bucket name")
    lonely = _start("--data", path, *listen, "--host-id", "h1")
    assert lonely.returncode == 1 and "--host-id names this kernel on shared storage" in lonely.stderr

    url = f"s3://{bucket}/start"
    kernel = storage_kernel(path, url, "host-s").start()
    assert f"storage {url} host host-s" in kernel.output
    kernel.stop()
    embedded = _start("--data", path, *listen)
    assert embedded.returncode == 1
    assert embedded.stderr.strip().splitlines()[-1] == (f"aos-kernel: this data directory is host host-s on shared storage: start "
                                       f"aos-kernel with --storage {url}")
    other = _start("--data", path, *listen, "--storage", url, "--host-id", "host-t")
    assert other.returncode == 1 and "this data directory is host host-s's, not host-t's" in other.stderr

    fresh = data_dir()
    try:
        reused = _start("--data", fresh, "--listen", f"unix:{fresh}/k.sock", "--storage", url, "--host-id", "host-s")
        assert reused.returncode == 1 and "host host-s already has a log" in reused.stderr
        unreachable = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
        down = _start("--data", fresh, "--listen", f"unix:{fresh}/k.sock", "--storage", url, env=unreachable)
        assert down.returncode == 1 and "cannot reach the object store" in down.stderr
        assert "Traceback" not in down.stderr + reused.stderr + other.stderr + embedded.stderr
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
