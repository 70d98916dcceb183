"""Fixtures of the browser suites: the web application (and an ungranted server beside it), real Chromium."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

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


class SharedBrowser:
    """One ``BrowserAdapter`` (so one Chromium) for a whole module, on an event loop of its own in a thread:
    Playwright's objects belong to the loop that made them, and each test's ``asyncio.run`` would make a new one."""

    def __init__(self) -> None:
        from aos.adapters.browser import BrowserAdapter

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.adapter = BrowserAdapter()

    def run(self, work: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.adapter.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[SharedBrowser]:
    kit = SharedBrowser()
    try:
        yield kit
    finally:
        kit.close()
