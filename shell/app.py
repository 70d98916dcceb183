"""``aos-shell``: an interactive shell for kernels and worlds.

    aos-shell                                   the local kernel (started if none runs)
    aos-shell --connect ADDR --token-file F     any kernel
    aos-shell --connect tcp:HOST:PORT --tls-ca CA.pem ...   a kernel whose TCP listener speaks TLS
    aos-shell -c "worlds; world c1; state"      run commands, exit 1 on the first error
    echo "worlds" | aos-shell                   the same, from a pipe

The whole shell runs in one ``aos.kernel.client.run`` loop: the Cap'n Proto
connection and the prompt share it.
"""

from __future__ import annotations

import argparse
import os
import sys

from aos.cli_connect import default_connect, default_token_file
from aos.cli_errors import report
from aos.kernel.client import TlsOptions, run
from aos.kernel.config import default_data_dir
from aos.shell.commands import ExitShell
from aos.shell.runner import Outcome, Runner
from aos.shell.session import Session, Target, label_for


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aos-shell", description="Interactive shell for AOS kernels and worlds.")
    parser.add_argument("--connect", metavar="ADDR", help="kernel address, unix:PATH or tcp:HOST:PORT "
                        "(default: $AOS_CONNECT, else the local kernel, started if none runs)")
    parser.add_argument("--token-file", metavar="FILE", help="token to restore (default: the local admin token)")
    parser.add_argument("--tls-ca", metavar="PEM", help="speak TLS to a TCP kernel, trusting this CA (or the "
                        "kernel's self-signed certificate) (default: $AOS_TLS_CA)")
    parser.add_argument("--tls-server-name", metavar="NAME", help="the name the kernel's TLS certificate must carry "
                        "(default: $AOS_TLS_SERVER_NAME, else the host of the address)")
    parser.add_argument("--universe", "-u", default=os.environ.get("AOS_UNIVERSE", "default"))
    parser.add_argument("-c", dest="commands", metavar="COMMANDS", help='run "COMMAND; COMMAND" and exit')
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    return parser


def target_from(args: argparse.Namespace) -> Target:
    token_file = args.token_file or default_token_file()
    if args.connect or os.environ.get("AOS_CONNECT"):
        address = args.connect or default_connect()
        tls = TlsOptions.from_env(args.tls_ca, args.tls_server_name)
        return Target(address, token_file, label_for(address), tls=tls)
    data = os.environ.get("AOS_DATA") or default_data_dir()
    return Target(default_connect(), token_file, "local", data_dir=data)


async def script(runner: Runner, text: str) -> int:
    """Run commands without a prompt: 0 if all succeed, 1 at the first error, 130 if interrupted."""
    try:
        outcome = await runner.run_text(text)
    except ExitShell:
        return 0
    finally:
        runner.session.close()
    return {Outcome.OK: 0, Outcome.ERROR: 1, Outcome.INTERRUPTED: 130}[outcome]


async def interactive(runner: Runner) -> int:
    from aos.shell.repl import repl

    try:
        return await repl(runner)
    finally:
        runner.session.close()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = _main(args)
    except Exception as exc:  # the one place a failure outside a command becomes a line (cli_errors)
        report("aos-shell", exc)
        code = 1
    sys.exit(code)


def _main(args: argparse.Namespace) -> int:
    color = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    runner = Runner(Session(target_from(args), args.universe), color=color)
    if args.commands is not None:
        coroutine = script(runner, args.commands)
    elif not sys.stdin.isatty():
        coroutine = script(runner, sys.stdin.read())
    else:
        coroutine = interactive(runner)
    try:
        code = run(coroutine)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) left; that is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    return code
