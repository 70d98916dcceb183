"""Where the shell is: one kernel connection, the universe and world it is in.

The connection is opened on first need and reopened after it is lost: a call
that finds the kernel gone raises ``KernelUnavailable`` and drops the
connection; the next ``ensure`` opens a new one, restores the token again
(re-read from its file) and reports "reconnected". Capabilities minted on the
old connection (worlds, cas) are forgotten with it.

With no ``--connect`` the shell talks to the local laptop kernel and starts
one (detached, on the default data dir) if none answers.

Given a scheduler (``--connect A,B`` with a scheduler or universe token) the
shell works on the cluster: worlds are listed, created and entered through
the scheduler, and the world one is in is followed when it moves to another
host (``FollowingWorld``), so commands and a live journal tail go on there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from typing import Any
from dataclasses import dataclass

from aos.cli_connect import read_token
from aos.errors import AosError, InvalidArgument, KernelUnavailable
from aos.kernel.client import CasClient, Connection, KernelClient, TlsOptions, WorldClient, WorldsClient
from aos.kernel.scheduler.client import SchedulerSession, scheduler_addresses
from aos.kernel.scheduler.worlds import UniverseWorlds


@dataclass(frozen=True, slots=True)
class Target:
    """Which kernel to reach and how.

    address: ``unix:PATH``, ``tcp:HOST:PORT`` or ``tls:HOST:PORT``.
    token_file: the token restored as the kernel capability (re-read on reconnect).
    label: the short name shown in the prompt (``local`` for the laptop kernel).
    data_dir: set for the local kernel only; the shell may start a kernel there.
    tls: how to check a TLS kernel (``--tls-ca``, ``--tls-server-name``); None for plain TCP.
    """

    address: str
    token_file: str
    label: str
    data_dir: str = ""
    tls: TlsOptions | None = None


def label_for(address: str) -> str:
    address = address.split(",", 1)[0]  # several scheduler addresses: the first names the cluster
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return os.path.basename(os.path.dirname(rest)) or rest
    return rest


class Session:
    """The connection and the current location (universe, world)."""

    def __init__(self, target: Target, universe: str = "default", start_timeout: float = 30.0) -> None:
        self.target = target
        self.universe = universe
        self.world_id = ""
        self.start_timeout = start_timeout
        self.conn: Connection | None = None
        self.kernel: KernelClient | None = None
        self.cluster: SchedulerSession | None = None  # set instead of kernel when the token is a scheduler's
        self.ever_connected = False
        self._worlds: WorldsClient | UniverseWorlds | None = None
        self._world: Any = None  # a WorldClient, or on a cluster a FollowingWorld
        self._cas: CasClient | None = None

    # --- the connection -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.kernel is not None or self.cluster is not None

    def _token(self) -> str:
        # a missing local admin token means no local kernel ever ran: KernelUnavailable, so one is started
        return read_token(self.target.token_file, explicit=not self.target.data_dir)

    async def _open(self) -> None:
        addresses = scheduler_addresses(self.target.address)
        if len(addresses) > 1:  # only a cluster has several addresses: its schedulers
            self.cluster = await SchedulerSession.open(addresses, self._token(), tls=self.target.tls)
            self.conn = self.cluster.conn
            return
        conn = await Connection.open(self.target.address, tls=self.target.tls)
        try:
            cap, info = await conn.restore_with_info(self._token())
            if info.kind in ("scheduler", "universe"):
                self.cluster = SchedulerSession(conn, cap, self._token(), addresses, tls=self.target.tls)
                if info.kind == "universe":
                    self.universe = str(info.universe)
                self.conn = conn
                return
            kernel = await conn.restore_kernel(self._token())
        except BaseException:
            _close(conn)
            raise
        self.conn, self.kernel = conn, kernel

    async def ensure(self) -> list[str]:
        """Connect if not connected; returns notes for the user ("reconnected", "started ...")."""
        if self.connected:
            return []
        notes: list[str] = []
        try:
            await self._open()
        except KernelUnavailable:
            if not self.target.data_dir or self.ever_connected:
                raise
            try:
                notes.append(await self._start_local())
                await self._open()
            except KernelUnavailable as exc:
                try:  # another shell may have started a kernel at the same moment (and ours found the dir locked)
                    await self._open()
                except AosError:
                    raise exc from None
        if self.ever_connected:
            notes.append(f"reconnected to {self.target.address}")
        self.ever_connected = True
        return notes

    def lost(self) -> None:
        """Forget the connection and everything minted on it (after ``KernelUnavailable``)."""
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
        elif self.conn is not None:
            _close(self.conn)
        self.conn = self.kernel = self.cluster = None
        self._worlds = self._world = self._cas = None

    def close(self) -> None:
        self.lost()

    async def _start_local(self) -> str:
        """Start ``aos-kernel`` detached on the local data dir and wait for its "ready" line.

        A short-lived launcher process starts the kernel and exits, so the
        kernel is not this shell's child: it outlives the shell and never
        lingers as its zombie.
        """
        data = self.target.data_dir
        os.makedirs(data, exist_ok=True)
        log_path = os.path.join(data, "kernel.log")
        start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        try:
            launched = subprocess.run([sys.executable, "-c", _LAUNCHER, data, log_path], capture_output=True,
                                      text=True, timeout=30, check=True)
            pid = int(launched.stdout)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise KernelUnavailable(f"could not start aos-kernel: {exc}") from None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                f.seek(start)
                lines = f.read().decode(errors="replace").splitlines()
            if "ready" in lines:
                return f"no kernel was running: started aos-kernel (pid {pid}, data {data}, log {log_path})"
            if not _alive(pid):
                raise KernelUnavailable(f"aos-kernel exited: {' | '.join(lines[-3:]) or 'no output'}")
            await asyncio.sleep(0.05)
        raise KernelUnavailable(f"aos-kernel did not say ready within {self.start_timeout:.0f}s (see {log_path})")

    # --- capabilities for the current location --------------------------------------------
    def _kernel(self) -> KernelClient:
        if self.kernel is None:
            if self.cluster is not None:
                raise InvalidArgument("this is a cluster (a scheduler token): that command talks to one kernel; "
                                      "connect to a host kernel for it")
            raise KernelUnavailable("not connected")
        return self.kernel

    async def ping(self) -> None:
        """A cheap call that fails with ``KernelUnavailable`` when what we talk to is gone."""
        if self.cluster is not None:
            await self.cluster.on_leader(lambda s: s.universe(self.universe))
            return
        await self._kernel().status()

    async def worlds(self) -> WorldsClient | UniverseWorlds:
        if self._worlds is None:
            if self.cluster is not None:
                self._worlds = UniverseWorlds(self.cluster, self.universe)
            else:
                self._worlds = await self._kernel().worlds(self.universe)
        return self._worlds

    async def cas(self) -> CasClient:
        if self._cas is None:
            self._cas = await self._kernel().cas(self.universe)
        return self._cas

    async def world(self) -> WorldClient:
        if not self.world_id:
            raise InvalidArgument("not in a world: enter one with `world ID` (see `worlds`)")
        if self._world is None:
            self._world = await (await self.worlds()).open(self.world_id)
        return self._world

    async def enter(self, world_id: str) -> None:
        """Enter a world (raises ``UnknownWorld`` if there is none by that id)."""
        world = await (await self.worlds()).open(world_id)
        self.world_id, self._world = world_id, world

    def leave(self) -> None:
        self.world_id, self._world = "", None

    async def switch_universe(self, name: str) -> None:
        if self.cluster is not None:
            await (await self.cluster.universe(name)).info()  # refused here if it is none or not ours
            worlds: WorldsClient | UniverseWorlds = UniverseWorlds(self.cluster, name)
        else:
            worlds = await self._kernel().worlds(name)
        self.universe, self._worlds, self._cas = name, worlds, None
        self.leave()

    def where(self) -> str:
        """``label:universe/world``, as the prompt shows it."""
        place = f"{self.target.label}:{self.universe}"
        return f"{place}/{self.world_id}" if self.world_id else place


_LAUNCHER = """
import subprocess, sys
with open(sys.argv[2], "ab") as log:
    kernel = subprocess.Popen([sys.executable, "-m", "aos.kernel.daemon", "--data", sys.argv[1]],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
print(kernel.pid)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # an unreaped orphan is not alive
    except ProcessLookupError:
        return False
    except OSError:  # no /proc (not Linux): the signal check said it exists
        return True


def _close(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # closing a connection that is already dead may fail any way it likes
        conn.close()
