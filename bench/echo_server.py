"""A raw pycapnp echo server: the baseline every kernel figure is divided by.

Run as ``python bench/echo_server.py unix:PATH``. It serves ``Echo`` (see
``echo.capnp``) on stock asyncio, exactly like the kernel daemon serves its
capabilities (a pycapnp server on uvloop segfaults), prints ``listening
unix:PATH`` and ``ready`` like ``aos-kernel`` so ``KernelProcess``-style
launchers can wait on it, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import capnp

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo.capnp")
echo_capnp = capnp.load(SCHEMA)


def _no_write() -> None:
    pass


class NoopGroup:
    """The kernel's GroupCommitter (kernel/store.py) with the synced write replaced by nothing."""

    def __init__(self) -> None:
        self._queue: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="noop-commit")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def commit(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._queue:
                continue
            turn, self._queue = self._queue, []
            await loop.run_in_executor(self._thread, _no_write)
            for future in turn:
                if not future.done():
                    future.set_result(None)


class EchoImpl(echo_capnp.Echo.Server):  # type: ignore[misc,name-defined]
    def __init__(self, group: NoopGroup) -> None:
        self._group = group

    async def echo(self, data: bytes, _context: Any, **kwargs: Any) -> bytes:
        return data

    async def append(self, world: str, expectedSeq: int, epoch: int, records: Any, _context: Any, **kwargs: Any) -> int:
        [bytes(record) for record in records]
        return expectedSeq

    async def appendGrouped(
        self, world: str, expectedSeq: int, epoch: int, records: Any, _context: Any, **kwargs: Any
    ) -> int:
        [bytes(record) for record in records]
        await self._group.commit()
        return expectedSeq


async def serve(address: str) -> None:
    kind, _, path = address.partition(":")
    if kind != "unix" or not path:
        raise SystemExit(f"echo_server: bad address {address!r}; use unix:PATH")
    if os.path.exists(path):
        os.unlink(path)
    group = NoopGroup()

    async def on_connection(stream: Any) -> None:
        server = capnp.TwoPartyServer(stream, bootstrap=EchoImpl(group))
        with contextlib.suppress(capnp.KjException, OSError):  # a client going away is normal
            await server.on_disconnect()

    server = await capnp.AsyncIoStream.create_unix_server(on_connection, path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening unix:{path}", flush=True)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    if os.path.exists(path):
        os.unlink(path)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: echo_server.py unix:PATH")
    asyncio.run(capnp.run(serve(sys.argv[1])))


if __name__ == "__main__":
    main()
