"""Test helpers for the scheduler: a real etcd on 127.0.0.1 and real ``aos-scheduler`` processes.

``EtcdProcess().start()`` runs Debian's ``etcd`` (``etcd-server``) with a
temporary data directory and two free loopback ports, and waits until it
answers; ``stop`` ends it and removes the directory. ``SchedulerProcess`` is
``KernelProcess`` for ``aos-scheduler``: it waits on the daemon's own "ready"
line and reads back its address, its admin token and when it leads.
``running_cluster`` starts a ``LocalCluster``, waits for its hosts to join and
stops it however the block ends; ``shared_storage_cluster`` does that on a
fresh bucket of a moto S3 server; ``until`` polls an async condition. Shipped
with the package so users can test against a cluster the way we do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aos.kernel.storage.testing import MotoServer

ETCD_BINARY = "etcd"


def etcd_binary() -> str | None:
    """The etcd server on PATH (Debian's ``etcd-server`` installs ``/usr/bin/etcd``), or None."""
    return shutil.which(ETCD_BINARY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdProcess:
    """One single-member etcd cluster on loopback; ``url`` is its client endpoint."""

    def __init__(self, data_dir: str | None = None, log_path: str | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="aos-etcd-")
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.client_port = 0
        self.peer_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def command(self) -> list[str]:
        binary = etcd_binary()
        if binary is None:
            raise FileNotFoundError("etcd is not installed (Debian package etcd-server; ./run setup installs it)")
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        return [binary, "--name", "aos", "--data-dir", self.data_dir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"aos={peer}", "--log-level", "error"]

    def start(self, timeout: float = 30.0) -> EtcdProcess:
        for _ in range(5):  # a free port can be taken between the probe and etcd's bind: pick again
            self.client_port, self.peer_port = free_port(), free_port()
            log = open(self.log_path or os.devnull, "ab")
            try:
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            finally:
                log.close()
            if self._wait_healthy(timeout):
                return self
            self._end()
        raise RuntimeError(f"etcd did not become healthy on 127.0.0.1 (log: {self.log_path or 'none'})")

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as reply:
                    if b'"true"' in reply.read():
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _end(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self._end()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class SchedulerProcess:
    """A real ``aos-scheduler`` in a subprocess."""

    data_dir: str
    etcd: str
    listen: str = "tcp:127.0.0.1:0"
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    proc: subprocess.Popen[str] | None = None
    address: str = ""
    output: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    @property
    def token_path(self) -> str:
        return os.path.join(self.data_dir, "admin.token")

    @property
    def admin_token(self) -> str:
        with open(self.token_path) as f:
            return f.read().strip()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        return [sys.executable, "-m", "aos.kernel.scheduler.daemon", "--data", self.data_dir, "--etcd", self.etcd,
                "--listen", self.listen, *self.extra_args]

    def start(self, timeout: float = 30.0) -> SchedulerProcess:
        self.output, self.log_lines = [], []
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ if self.env is None else self.env), start_new_session=True)
        ready = threading.Event()

        def read_stdout() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.output.append(line)
                if line.startswith("listening "):
                    self.address = line.split(" ", 1)[1]
                elif line == "ready":
                    ready.set()
            ready.set()

        def read_stderr() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log_lines.append(line.rstrip("\n"))

        self._readers = [threading.Thread(target=read_stdout, daemon=True),
                         threading.Thread(target=read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()
        if not ready.wait(timeout) or self.proc.poll() is not None or "ready" not in self.output:
            self.kill()
            raise RuntimeError(f"aos-scheduler did not start: {(self.output + self.log_lines)[-10:]}")
        return self

    @property
    def leads(self) -> bool:
        """Whether it said it leads (and has not said since that it stopped)."""
        state = [line for line in self.output if line in ("leading", "standing by")]
        return bool(state) and state[-1] == "leading"

    def wait_leading(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.leads:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"aos-scheduler exited: {self.log_lines[-10:]}")
            time.sleep(0.02)
        raise AssertionError(f"aos-scheduler did not lead within {timeout}s: {self.output[-5:]}")

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close()

    def _close(self) -> None:
        for reader in getattr(self, "_readers", []):
            reader.join(5)
        if self.proc is not None:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None and not pipe.closed:
                    pipe.close()


@dataclass
class LocalCluster:
    """etcd, one or more schedulers and host kernels, all real processes on loopback (for tests and
    ``aos cluster up``). ``storage`` (a URL) puts every host on shared storage; ``env`` is their environment."""

    root: str
    hosts: int = 2
    schedulers: int = 1
    storage: str = ""
    env: dict[str, str] | None = None
    lease_ttl: int = 2
    capacity: float = 100.0
    host_args: list[list[str]] = field(default_factory=list)
    scheduler_args: list[str] = field(default_factory=list)  # every scheduler's extra options (--tls-cert ...)
    etcd: EtcdProcess | None = None
    etcd_url: str = ""
    scheduler_procs: list[SchedulerProcess] = field(default_factory=list)
    kernels: list[Any] = field(default_factory=list)

    def start(self, etcd_url: str = "") -> LocalCluster:
        if etcd_url:
            self.etcd_url = etcd_url
        else:
            self.etcd = EtcdProcess(os.path.join(self.root, "etcd"), os.path.join(self.root, "etcd.log")).start()
            self.etcd_url = self.etcd.url
        for i in range(self.schedulers):
            proc = SchedulerProcess(os.path.join(self.root, f"scheduler{i}"), self.etcd_url,
                                    extra_args=["--lease-ttl", str(self.lease_ttl), *self.scheduler_args],
                                    env=self.env)
            self.scheduler_procs.append(proc.start())
        self.scheduler_procs[0].wait_leading()
        for i in range(self.hosts):
            self.add_host(i)
        return self

    def add_host(self, i: int, extra: list[str] | None = None) -> Any:
        from aos.kernel.process import KernelProcess

        data = os.path.join(self.root, f"host{i}")
        args = ["--scheduler", self.addresses, "--scheduler-token", self.scheduler.token_path,
                "--capacity", f"{self.capacity:g}", *(extra or (self.host_args[i] if i < len(self.host_args) else []))]
        if self.storage:
            args += ["--storage", self.storage, "--host-id", f"host{i}"]
        kernel = KernelProcess(data, listen=[f"unix:{os.path.join(data, 'kernel.sock')}", "tcp:127.0.0.1:0"],
                               extra_args=args, env=self.env)
        kernel.start()
        while len(self.kernels) <= i:
            self.kernels.append(None)
        self.kernels[i] = kernel
        return kernel

    @property
    def addresses(self) -> str:
        """Every scheduler's address, comma-separated, as hosts and clients are given them."""
        return ",".join(p.address for p in self.scheduler_procs)

    @property
    def scheduler(self) -> SchedulerProcess:
        """The first scheduler still running."""
        return next(p for p in self.scheduler_procs if p.proc is not None and p.proc.poll() is None)

    def wait_joined(self, kernel: Any, timeout: float = 30.0) -> str:
        """The host id once the kernel said it joined."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(kernel.output):
                if line.startswith("joined "):
                    return str(line.split()[1])
            if kernel.proc is not None and kernel.proc.poll() is not None:
                raise AssertionError(f"the host kernel exited: {kernel.log_lines[-10:]}")
            time.sleep(0.02)
        raise AssertionError(f"the host kernel did not join: {kernel.log_lines[-10:]}")

    def stop(self) -> None:
        for kernel in self.kernels:
            if kernel is not None:
                kernel.kill()
        for proc in self.scheduler_procs:
            proc.kill()
        if self.etcd is not None:
            self.etcd.stop()


@contextlib.contextmanager
def shared_storage_cluster(etcd_url: str, moto: MotoServer, *, prefix: str = "aosc-",
                           env: dict[str, str] | None = None, **options: Any) -> Iterator[LocalCluster]:
    """A started ``LocalCluster`` (``options``: hosts, capacity, scheduler_args ...) with every host on a fresh
    bucket of ``moto`` and joined; stopped, its directory removed, when the block ends, however it ends.

    ``etcd_url`` is the etcd (with a key prefix) to use, or "" for one of the cluster's own. While the block
    runs ``os.environ`` points boto3 at ``moto`` (the test's own clients reach the same server), and it is put
    back afterwards; the processes get that environment with ``env`` over it. ``prefix`` names the temporary
    directory under /tmp (unix socket paths must stay short)."""
    from aos.kernel.storage.objects import S3Objects, make_client

    with moto.environ(), tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as root:
        bucket = f"aos-{uuid.uuid4().hex[:12]}"
        S3Objects(make_client(), bucket).ensure_bucket()
        cluster = LocalCluster(root, storage=f"s3://{bucket}/c", env=dict(os.environ, **(env or {})), **options)
        with running_cluster(cluster, etcd_url):
            yield cluster


@contextlib.contextmanager
def running_cluster(cluster: LocalCluster, etcd_url: str = "") -> Iterator[LocalCluster]:
    """``cluster`` started (on ``etcd_url``, or an etcd of its own) with every host joined; stopped when the
    block ends, however it ends (a start that fails half way stops what it started)."""
    try:
        cluster.start(etcd_url)
        for kernel in cluster.kernels:
            cluster.wait_joined(kernel)
        yield cluster
    finally:
        cluster.stop()


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 60.0, what: str = "condition",
                retry: tuple[type[Exception], ...] | None = None) -> Any:
    """Poll ``check`` until it returns something truthy, and return that. An error in ``retry`` (default:
    ``AosError``, as while a world moves or a host goes away) counts as not yet; the last one is named if
    ``timeout`` seconds pass first."""
    if retry is None:
        from aos.errors import AosError

        retry = (AosError,)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Exception | None = None
    while loop.time() < deadline:
        try:
            value = await check()
            if value:
                return value
        except retry as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not met in {timeout}s (last error: {last!r})")
