"""``aos-kernel``: the per-host kernel daemon.

Start-up mistakes (a port in use, a TLS file that is missing or not PEM, a bad
``--health`` address, a ``--grant-host`` directory that does not exist, a data
directory another kernel holds, a bad or unreachable ``--storage``, a data
directory of another host or storage) are one line on stderr, ``aos-kernel: ...``,
and exit status 1: the options are checked before anything starts, and what
only binding can tell is reported the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

import capnp

from aos import __version__
from aos.cli_errors import describe
from aos.errors import AosError, InvalidArgument
from aos.kernel import log as kernel_log
from aos.kernel.config import from_env
from aos.kernel.names import check_name
from aos.kernel.server import KernelServer
from aos.kernel.tls import check_listener_files

log = logging.getLogger("aos.kernel")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aos-kernel",
        description="Serve AOS capabilities (CAS, journals, timers, mailboxes) over Cap'n Proto.",
    )
    parser.add_argument("--data", help="data directory (default: $AOS_DATA or ~/.local/share/aos/kernel)")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="unix:PATH or tcp:HOST:PORT; repeatable (default: unix:DATA/kernel.sock)",
    )
    parser.add_argument("--health", metavar="HOST:PORT", help="gRPC health endpoint (default 127.0.0.1:0; '' = off)")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: $AOS_METRICS, else off)")
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate for TCP listeners (with --tls-key)")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for TCP listeners")
    parser.add_argument(
        "--grant-host",
        action="append",
        metavar="DIR",
        help="let worlds be granted host.fs/host.exec under DIR (repeatable; default: none)",
    )
    parser.add_argument(
        "--python-module",
        action="append",
        metavar="MODULE",
        help="let worlds run Python workflows from MODULE (or every module under PKG with PKG.*; repeatable; "
        "the project's own are always allowed)",
    )
    parser.add_argument("--idle-seconds", type=float, help="hibernate worlds idle this long (default 30)")
    from aos.kernel.scheduler.agent import add_options as add_cluster_options

    add_cluster_options(parser)
    parser.add_argument("--storage", metavar="URL",
                        help="shared storage: s3://BUCKET/PREFIX (endpoint, region and credentials from the standard "
                        "AWS variables) or file:///PATH (default: $AOS_STORAGE, else embedded: RocksDB only)")
    parser.add_argument("--host-id", metavar="ID",
                        help="this kernel's id on shared storage (default: $AOS_HOST_ID, else the one kept in the "
                        "data directory, else a new one)")
    parser.add_argument("--exit-with", type=int, metavar="PID",
                        help="stop, as on SIGTERM, when process PID exits (a kernel started for one command)")
    parser.add_argument("--log-level", default=os.environ.get("AOS_LOG_LEVEL", "info"))
    parser.add_argument("--version", action="version", version=f"aos-kernel {__version__}")
    return parser


def say(line: str) -> None:
    """Startup facts for people and for scripts that wait for 'ready'."""
    print(line, flush=True)


def check(args: argparse.Namespace) -> None:
    """Refuse options that cannot work, before anything starts (``InvalidArgument``)."""
    check_listener_files(args.tls_cert, args.tls_key)
    from aos.kernel.scheduler.agent import config_from as cluster_config

    cluster_config(args)
    for root in args.grant_host or ():
        if not os.path.isdir(root):
            raise InvalidArgument(f"--grant-host {root}: no such directory")
    storage = args.storage if args.storage is not None else os.environ.get("AOS_STORAGE", "")
    if storage:
        from aos.kernel.storage.config import StorageConfig

        StorageConfig.from_url(storage)
    host_id = args.host_id if args.host_id is not None else os.environ.get("AOS_HOST_ID", "")
    if host_id:
        if not storage:
            raise InvalidArgument("--host-id names this kernel on shared storage: give --storage too")
        check_name(host_id, "--host-id")
    health = args.health if args.health is not None else os.environ.get("AOS_HEALTH")
    if health:
        host, sep, port = health.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise InvalidArgument(f"--health {health!r}: use HOST:PORT (port 0 picks a free one; '' turns it off)")
        if int(port):
            _can_listen(host.strip("[]"), int(port), "--health")
    metrics = args.metrics if args.metrics is not None else os.environ.get("AOS_METRICS")
    if metrics:
        host, sep, port = metrics.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise InvalidArgument(f"--metrics {metrics!r}: use HOST:PORT (port 0 picks a free one)")
        if int(port):
            _can_listen(host.strip("[]"), int(port), "--metrics")


def _can_listen(host: str, port: int, option: str) -> None:
    """Bind and release ``host:port`` now, so a port in use is one clear line (grpcio would log its own)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise InvalidArgument(f"{option} {host}:{port}: cannot listen there: {exc.strerror or exc}") from None


def watch_process(pid: int, gone: Callable[[], None]) -> Callable[[], None]:
    """Call ``gone`` once process ``pid`` has exited (at once if it already has); returns a stop function."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        loop.call_soon(gone)
        return lambda: None
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): look now and then
        async def poll() -> None:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    gone()
                    return
                except PermissionError:  # it exists, owned by someone else
                    pass
                await asyncio.sleep(0.5)

        task = asyncio.ensure_future(poll())
        return task.cancel

    def readable() -> None:  # a pidfd becomes readable when its process exits
        loop.remove_reader(fd)
        gone()

    loop.add_reader(fd, readable)

    def stop() -> None:
        loop.remove_reader(fd)
        os.close(fd)

    return stop


def _watch_children_by_pidfd() -> None:
    """Learn of a command's exit from a pidfd on the running loop (Python 3.12 does so by itself).

    Python 3.11's default child watcher starts a thread per running command that blocks in
    ``waitpid`` and hands the exit back across threads: a host whose agents run many commands at once
    holds a thread for each (an agent turn's time was the same either way, within 2%)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a Linux before 5.3, or a sandbox that refuses it: keep the threads
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())  # the daemon's one loop, for its whole life
    asyncio.set_child_watcher(watcher)


async def run(args: argparse.Namespace) -> int:
    check(args)
    config = from_env(
        data_dir=args.data and os.path.abspath(args.data),
        listen=tuple(args.listen) if args.listen else None,
        health=args.health,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        host_roots=tuple(os.path.abspath(d) for d in args.grant_host) if args.grant_host else None,
        idle_seconds=args.idle_seconds,
        python_modules=tuple(args.python_module) if args.python_module else None,
        metrics=args.metrics,
        storage=args.storage,
        host_id=args.host_id,
    )
    _watch_children_by_pidfd()
    server = KernelServer(config)
    stop = asyncio.Event()
    reason = ["signal"]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    unwatch = lambda: None  # noqa: E731
    agent = None
    metrics = None
    if args.exit_with:
        def parent_gone() -> None:
            reason[0] = "parent_exited"
            stop.set()

        unwatch = watch_process(args.exit_with, parent_gone)
    try:
        await server.start()
        say(f"aos-kernel {__version__} data={config.data_dir} pid={os.getpid()}")
        if server.storage is not None:
            say(f"storage {server.storage.url} host {server.storage.host_id}")
        for address in server.addresses:
            say(f"listening {address}")
        if server.health is not None:
            say(f"health grpc {server.health.address}")
        if config.metrics and server.services is not None:
            from aos.kernel.metrics import MetricsEndpoint

            metrics = MetricsEndpoint(server.services, config.metrics)
            await metrics.start()
            say(f"metrics http://{metrics.address}/metrics")
        say(f"admin token: {server.admin_token_path}")
        from aos.kernel.scheduler.agent import HostAgent, config_from

        cluster = config_from(args)
        if cluster is not None:  # a host of a cluster: join it in the background, serve meanwhile
            agent = HostAgent(cluster, server)
            agent.start()
        # everything made at start-up lives as long as the process: keep the cyclic GC
        # from re-scanning it, and collect young objects less often (full collections
        # were stalling every connection for 15-30 ms under load)
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        say("ready")
        fatal = asyncio.ensure_future(server.fatal.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([fatal, stopped], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (fatal, stopped):
            waiter.cancel()
        if server.fatal.is_set():
            log.critical("event=shutdown reason=storage_failure")
            return 3
        log.info("event=shutdown reason=%s", reason[0])
        return 0
    finally:
        unwatch()
        if agent is not None:
            await agent.stop()
        if metrics is not None:
            await metrics.stop()
        await server.stop()
        log.info("event=stopped")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    kernel_log.configure(args.log_level)
    try:
        code = asyncio.run(capnp.run(run(args)))
    except KeyboardInterrupt:
        code = 130
    except AosError as exc:  # a start-up mistake: the operator's, one line
        print(f"aos-kernel: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        code = 1
    except OSError as exc:  # what only trying could tell: a port in use, an address not ours
        print(f"aos-kernel: cannot start: {describe(exc)}", file=sys.stderr, flush=True)
        code = 1
    except Exception as exc:  # a bug of ours: the traceback goes to the log, one line to the operator
        log.critical("event=crashed error=%r", str(exc)[:200], exc_info=exc)
        print(f"aos-kernel: {describe(exc)}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
