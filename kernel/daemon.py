"""``aos-kernel``: the per-host kernel daemon."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

import capnp

from aos import __version__
from aos.errors import AosError
from aos.kernel import log as kernel_log
from aos.kernel.config import from_env
from aos.kernel.server import KernelServer

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
    parser.add_argument("--log-level", default=os.environ.get("AOS_LOG_LEVEL", "info"))
    parser.add_argument("--version", action="version", version=f"aos-kernel {__version__}")
    return parser


def say(line: str) -> None:
    """Startup facts for people and for scripts that wait for 'ready'."""
    print(line, flush=True)


async def run(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise AosError("--tls-cert and --tls-key go together")
    config = from_env(
        data_dir=args.data and os.path.abspath(args.data),
        listen=tuple(args.listen) if args.listen else None,
        health=args.health,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        host_roots=tuple(os.path.abspath(d) for d in args.grant_host) if args.grant_host else None,
        idle_seconds=args.idle_seconds,
        python_modules=tuple(args.python_module) if args.python_module else None,
    )
    server = KernelServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        say(f"aos-kernel {__version__} data={config.data_dir} pid={os.getpid()}")
        for address in server.addresses:
            say(f"listening {address}")
        if server.health is not None:
            say(f"health grpc {server.health.address}")
        say(f"admin token: {server.admin_token_path}")
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
        log.info("event=shutdown reason=signal")
        return 0
    finally:
        await server.stop()
        log.info("event=stopped")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    kernel_log.configure(args.log_level)
    try:
        code = asyncio.run(capnp.run(run(args)))
    except AosError as exc:
        print(f"aos-kernel: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
