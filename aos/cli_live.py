"""Live views of the CLI (``journal tail``, ``world journal --tail``, ``agent run``).

A live view prints records as the kernel pushes them and must end, with a
reason, as soon as it has no point left:

- the view is done (the agent's session ended): ``finish``;
- the kernel went away (stopped, crashed, the network broke): the
  connection's ``disconnected`` future fires and ``wait`` raises
  ``KernelUnavailable`` at once, rather than sitting silent;
- the reader of stdout left (``aos ... | head -3``): printing fails with a
  broken pipe *inside a callback the kernel made*, where raising would only
  end the kernel's push; ``print`` turns that into ``OutputClosed`` for
  ``wait`` instead, and points stdout at /dev/null so nothing else trips on it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from aos.errors import AosError, KernelUnavailable


class OutputClosed(AosError):
    """Standard output was closed while a live view was printing (the reader of a pipe left)."""


class LiveView:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._done.done()

    def print(self, line: str) -> None:
        """Print one line now; a closed stdout ends the view with ``OutputClosed``."""
        if self._done.done():
            return
        try:
            print(line, flush=True)
        except (BrokenPipeError, ConnectionResetError):
            silence_stdout()
            self.fail(OutputClosed("standard output was closed (the reader of the pipe left)"))

    def finish(self, result: Any = None) -> None:
        if not self._done.done():
            self._done.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if not self._done.done():
            self._done.set_exception(exc)

    async def wait(self, doing: str) -> Any:
        """Until the view is finished (its result) or failed (raises); ``KernelUnavailable``
        when the connection drops first. ``doing`` says what was going on, for that message."""
        lost = asyncio.ensure_future(self._conn.disconnected())
        await asyncio.wait([self._done, lost], return_when=asyncio.FIRST_COMPLETED)
        if self._done.done():
            return self._done.result()
        raise KernelUnavailable(f"the kernel closed the connection while {doing} (it stopped, or the network "
                                "broke)")


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests): nothing to silence
        pass
