"""Broadcast wake-ups keyed by name: many waiters, one notifier, no polling."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class Notifier:
    """``wait(key)`` returns a future that ``notify(key)`` resolves for all waiters."""

    def __init__(self) -> None:
        self._futures: dict[Hashable, asyncio.Future[None]] = {}

    def wait(self, key: Hashable) -> asyncio.Future[None]:
        future = self._futures.get(key)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._futures[key] = future
        return future

    def notify(self, key: Hashable) -> None:
        future = self._futures.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)
