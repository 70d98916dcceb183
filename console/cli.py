"""``aos console``: start the web console against a kernel and print its one-time login link.

    aos console [--connect ADDR] [--token-file F] [--listen 127.0.0.1:PORT] [--audit-file F]

The defaults are the CLI's: the local kernel and its admin token. The
console restores the token once (refusing a token it cannot use), listens,
and prints ``http://HOST:PORT/login?token=...``; ``SIGUSR1`` prints a new
link; ``SIGTERM``/Ctrl-C stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from typing import Any

from aos import cli_connect
from aos.errors import InvalidArgument

from aos.console.audit import AuditLog, default_audit_file

log = logging.getLogger("aos.console")


def add_parser(sub: Any) -> None:
    console = sub.add_parser(
        "console", help="web console: worlds, journals, agents, interventions (prints a login link)",
        description="Serve the web console for the kernel this token reaches. It holds only what the token "
                    "grants: a read-only or narrower token gives a console without the actions it cannot do. "
                    "It prints a one-time login link; kill -USR1 PID prints another.")
    # the global --connect/--token-file also work after `console` (SUPPRESS keeps the global value otherwise)
    for flag, metavar, text in (("--connect", "ADDR", "kernel address (default: $AOS_CONNECT, else the local kernel)"),
                                ("--token-file", "FILE", "token to restore (default: the local admin token)"),
                                ("--tls-ca", "PEM", "speak TLS to a TCP kernel, trusting this CA"),
                                ("--tls-server-name", "NAME", "the name the kernel's certificate must carry")):
        console.add_argument(flag, metavar=metavar, default=argparse.SUPPRESS, help=text)
    console.add_argument("--listen", default="127.0.0.1:8765", metavar="HOST:PORT",
                         help="where to serve the page (default %(default)s; port 0 picks a free one)")
    console.add_argument("--audit-file", default=None, metavar="FILE",
                         help="audit log for tokens that cannot write the raw journal console.audit "
                              f"(default {default_audit_file()})")


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"--listen {text!r}: use HOST:PORT (port 0 picks a free one)")
    return host.strip("[]"), int(port)


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from aos.console.auth import Gate
    from aos.console.cluster import open_backend
    from aos.console.server import Console

    host, port = _listen(args.listen)
    address = args.connect or cli_connect.default_connect()
    explicit = args.token_file is not None or "AOS_TOKEN_FILE" in os.environ
    token = cli_connect.read_token(args.token_file or cli_connect.default_token_file(), explicit)
    backend = await open_backend(address, token, cli_connect.tls_options(args))  # a kernel's, or a scheduler's
    info = backend.info
    assert info is not None
    journal_for = backend.journal_cap if info.kind == "kernel" else None
    audit = AuditLog(journal_for, args.audit_file or default_audit_file())
    gate = Gate()
    console = Console(backend, audit, gate)
    runner = web.AppRunner(console.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    base = f"http://{shown}:{bound_port}"
    console.origins = {f"{shown}:{bound_port}"} | ({f"localhost:{bound_port}"} if bound_host in ("127.0.0.1", "::1")
                                                   else set())
    as_json = getattr(args, "json", False)

    def login_link() -> None:
        link = f"{base}/login?token={gate.new_login()}"
        print(json.dumps({"login": link}) if as_json else f"open (works once): {link}", flush=True)

    mode = "read-only" if info.read_only else "read-write"
    if as_json:  # one document per line, like the other live commands: what it serves, then each link
        print(json.dumps({"console": base, "connect": address, "kind": info.kind, "description": info.description,
                          "readOnly": info.read_only, "audit": str(audit.where(info.universe))}), flush=True)
    else:
        print(f"aos console for {address}: {info.description} ({mode})", flush=True)
        print(f"audit log: {audit.where(info.universe)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the link: whoever reads it may stop us at once
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, login_link)
    login_link()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        backend.forget()
    return 0


def run_console(args: argparse.Namespace) -> int:
    from aos.cli_errors import report
    from aos.kernel import log as kernel_log
    from aos.kernel.client import run

    kernel_log.configure(os.environ.get("AOS_LOG_LEVEL", "warning"))
    try:
        return run(serve(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, as every aos command
        report("aos console", exc)
        return 1

