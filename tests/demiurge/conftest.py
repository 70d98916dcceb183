"""Fixtures for the Demiurge suites: a kernel pointed at a provider twin whose model a test scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demikit import DemiurgeKernel  # noqa: E402


@pytest.fixture
def dk() -> Iterator[DemiurgeKernel]:
    """A twin of the Anthropic API and a kernel whose environment points at it."""
    kit = DemiurgeKernel()
    try:
        yield kit
    finally:
        kit.close()
