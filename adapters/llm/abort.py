"""Cancellation (ULS 4.7): ``AbortController().signal`` aborts a call.

``run_abortable`` races the work against the signal; on abort the work's task
is cancelled, which closes its HTTP connection, and ``AbortError`` is raised.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import TypeVar

from .errors import AbortError

T = TypeVar("T")


class AbortSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str = "aborted"

    @property
    def aborted(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def raise_if_aborted(self) -> None:
        if self.aborted:
            raise AbortError(self.reason)


class AbortController:
    def __init__(self) -> None:
        self.signal = AbortSignal()

    def abort(self, reason: str = "aborted") -> None:
        self.signal.reason = reason
        self.signal._event.set()


async def run_abortable(work: Awaitable[T], signal: AbortSignal | None) -> T:
    if signal is None:
        return await work
    if signal.aborted:
        if inspect.iscoroutine(work):
            work.close()  # never started; close it so it is not reported as un-awaited
        raise AbortError(signal.reason)
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(signal.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    raise AbortError(signal.reason)
