"""Fixtures for the world-host tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aos.testing import KernelProcess


@pytest.fixture
def granting_kernel(data_dir: str, tmp_path) -> Iterator[KernelProcess]:  # type: ignore[no-untyped-def]
    """A laptop kernel that may grant host.fs under tmp_path/granted, hibernating worlds after 0.3 s idle."""
    granted = tmp_path / "granted"
    granted.mkdir()
    proc = KernelProcess(data_dir, extra_args=["--grant-host", str(granted), "--idle-seconds", "0.3"]).start()
    proc.granted = granted  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def example_kernel(granting_kernel: KernelProcess) -> KernelProcess:
    return granting_kernel
