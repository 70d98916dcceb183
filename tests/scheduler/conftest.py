"""Fixtures for the scheduler: a real etcd on 127.0.0.1 (skipped, with the reason,
only where the etcd binary is not installed), a fresh key prefix per test, and a
moto S3 server for hosts on shared storage.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest

from aos.kernel.scheduler.testing import EtcdProcess, etcd_binary
from aos.kernel.storage.testing import MotoServer


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdProcess]:
    """One etcd for the session (random loopback ports, a temporary data directory)."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
    with tempfile.NamedTemporaryFile(prefix="aos-etcd-", suffix=".log", delete=False) as log:
        path = log.name
    server = EtcdProcess(log_path=path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd(etcd_server: EtcdProcess) -> str:
    """The etcd URL with a fresh cluster prefix for this test (``http://127.0.0.1:PORT/PREFIX``)."""
    return f"{etcd_server.url}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 server process for the session."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
