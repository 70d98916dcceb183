"""Fixtures shared by the whole suite: a real kernel in a subprocess."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from aos.testing import KernelProcess


def pytest_configure(config: pytest.Config) -> None:
    # every kernel a test starts may run the test workflow module (kernel/world/testing.py)
    os.environ.setdefault("AOS_PYTHON_MODULES", "aos.kernel.world.testing")


@pytest.fixture
def data_dir() -> Iterator[str]:
    # unix socket paths are limited to 108 bytes: keep the directory short
    with tempfile.TemporaryDirectory(prefix="aosk-", dir="/tmp") as path:
        yield path


@pytest.fixture
def kernel(data_dir: str) -> Iterator[KernelProcess]:
    """A running kernel listening on a unix socket in its data dir."""
    proc = KernelProcess(data_dir).start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def kernel_tcp(data_dir: str) -> Iterator[KernelProcess]:
    """A running kernel listening on a unix socket and on TCP 127.0.0.1."""
    proc = KernelProcess(data_dir, listen=[f"unix:{os.path.join(data_dir, 'kernel.sock')}", "tcp:127.0.0.1:0"]).start()
    try:
        yield proc
    finally:
        proc.kill()
