"""pytest plumbing for ``bench/``: collection of ``bench_*.py``, shared servers, the figures table.

Run everything with::

    .venv/bin/python -m pytest bench -q --benchmark-disable-gc

or one file with ``.venv/bin/python -m pytest bench/bench_kernel.py -q``.
Benchmarks report; they never fail on speed. Each module records its figures
through the ``figures`` fixture, and one table with every figure, its ratio
to its baseline, its target and PASS/MISS is printed at the end of the run.

Fixtures here are generic: ``figures``, ``echo_server`` (the raw pycapnp
baseline, one per session) and ``kernel_process`` (a fresh ``aos-kernel`` per
module). Shared helpers (the closed-loop driver, running a client on asyncio
or uvloop, the echo server process) are in ``benchlib.py``, importable from
any ``bench_*.py`` as ``import benchlib``.
"""

from __future__ import annotations

import fnmatch
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import benchlib

from aos.testing import KernelProcess

_FIGURES = pytest.StashKey[benchlib.Figures]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench/bench_*.py`` without ``-o python_files=...``.

    pytest's own collector already takes files named on the command line and
    files matching ``python_files``; this only adds the rest, so nothing is
    collected twice.
    """
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_") or file_path.parent != BENCH_DIR:
        return None
    if parent.session.isinitpath(file_path):
        return None
    if any(fnmatch.fnmatch(file_path.name, pattern) for pattern in parent.config.getini("python_files")):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = benchlib.Figures()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> benchlib.Figures:
    """Record a figure: ``figures.record(key, label, value, unit, baseline=..., target=..., benchmark=...)``."""
    return request.config.stash[_FIGURES]


def _short_tmp(prefix: str) -> tempfile.TemporaryDirectory[str]:
    # unix socket paths are limited to 108 bytes: keep the directory short
    return tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp")


@pytest.fixture(scope="session")
def echo_server() -> Iterator[benchlib.EchoProcess]:
    """The raw pycapnp echo server (stock asyncio, unix socket) in its own process."""
    with _short_tmp("aosbe-") as path:
        proc = benchlib.EchoProcess(path).start()
        try:
            yield proc
        finally:
            proc.kill()


@pytest.fixture(scope="module")
def kernel_process() -> Iterator[KernelProcess]:
    """A fresh ``aos-kernel`` on a unix socket, one per benchmark module."""
    with _short_tmp("aosbk-") as path:
        proc = KernelProcess(path).start()
        try:
            yield proc
        finally:
            proc.kill()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, None)
    if figures is None or not figures.items:
        return
    terminalreporter.section("AOS benchmark figures")
    for line in figures.table():
        terminalreporter.write_line(line)
    for note in (
        "ratio = value / the figure named in 'vs'; where a number is shown there, that baseline ran alongside",
        "(interleaved rounds in the same test) and the ratio uses it. Throughput is closed loop: N calls in",
        "flight, fastest of the rounds. us/call = CPU microseconds per call of the server process / of the",
        "client (this) process. Targets are goals, not assertions.",
    ):
        terminalreporter.write_line(note)
