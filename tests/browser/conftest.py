"""Fixtures of the browser suites: the web application (and an ungranted server beside it), real Chromium."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webapp import WebApp  # noqa: E402

pytest.importorskip("playwright.async_api", reason="playwright (pip install 'aos[browser]') is not installed")
from aos.adapters.browser import chromium_path  # noqa: E402

if chromium_path() is None:
    pytest.skip("Debian's chromium is not installed (./run setup installs it): no browser to drive",
                allow_module_level=True)


@pytest.fixture
def elsewhere() -> Iterator[WebApp]:
    """A server the tests never grant: nothing may reach it."""
    app = WebApp().start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def webapp(elsewhere: WebApp) -> Iterator[WebApp]:
    """The application under test; its ``/away`` redirects to ``elsewhere``."""
    app = WebApp(redirect_to=elsewhere.origin + "/stolen").start()
    try:
        yield app
    finally:
        app.stop()
