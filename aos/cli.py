"""``aos``: talk to a running kernel from the command line.

    aos status
    aos cas put FILE|-            aos cas get HASH [-o FILE]
    aos journal append JOURNAL TEXT...   aos journal read JOURNAL   aos journal tail JOURNAL
    aos journal ls
    aos world ...                 hosted worlds (aos/cli_world.py)
    aos agent run TASK [--repo R] [--twin]   aos agent replay SESSION   (aos/cli_agent.py)
    aos factory run JOB | status JOB | explain JOB | ls   software-factory jobs (aos/cli_factory.py)
    aos world propose|shadow|approve|reject|apply|rollback|history|manifest ID ...   (aos/cli_governance.py)
    aos demiurge WORLD TASK [--grant KIND] [--twin]   the Demiurge (aos/cli_demiurge.py)
    aos console [--listen H:P]    the web console (aos/console: prints a one-time login link)
    aos demo                      start a kernel on embedded defaults and show it working

Global options pick the kernel (``--connect``, ``$AOS_CONNECT``; TLS with
``--tls-ca``), the token (``--token-file``, default the local kernel's admin
token; a saved, attenuated token serves the commands of its kind) and the
universe (see ``aos.cli_connect``).
Output is for people; ``--json`` prints one JSON document for programs (a
live view, ``tail`` or ``agent run``, prints one per line). JSON has no byte
strings: bytes appear as ``{"$bytes": "<base64>"}``, everywhere, the same
spelling the World interface uses. Errors are one line on stderr and exit
status 1 (``AOS_DEBUG=1`` adds the traceback of an internal error).

``aos journal`` works on *raw journals*: named, append-only record logs of the
Journal service (journal.capnp) that any client may write. They are not
worlds: a world's journal is written only by the kernel and read with
``aos world journal``, and a raw journal named ``w1`` has nothing to do with a
world ``w1``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from aos import cli_connect
from aos.cli_errors import report
from aos.errors import AosError
from aos.kernel.host import jsonvalue

# kept for aos-shell and older callers
_default_connect = cli_connect.default_connect
_default_token_file = cli_connect.default_token_file

EPILOG = ("--json prints JSON; byte strings appear as {\"$bytes\": \"<base64>\"}. "
          "Errors: one line on stderr, exit status 1 (AOS_DEBUG=1 adds tracebacks of internal errors). "
          "Connecting over TLS: --connect tcp:HOST:PORT --tls-ca CA.pem (docs/clients.md).")
LIMIT_HELP = "at most N records: the last N, or the first N from --from SEQ (default %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aos", description="Command-line client for an AOS kernel.", epilog=EPILOG)
    cli_connect.add_options(parser)
    parser.add_argument("--universe", "-u", default=None,
                        help="the universe (default: $AOS_UNIVERSE, else 'default'; a token for one "
                             "capability brings its own)")
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    # --json is also accepted after the subcommand; SUPPRESS keeps the global value otherwise
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for programs")
    sub = _Subparsers(parser.add_subparsers(dest="command", required=True), common)

    sub.add_parser("status", help="kernel status and limits")
    sub.add_parser("demo", help="start a kernel on embedded defaults and exercise it (--json: one summary)")

    cas = sub.add_parser("cas", help="content-addressed blobs").add_subparsers(dest="action", required=True)
    put = cas.add_parser("put", help="store a file (or - for stdin)")
    put.add_argument("file")
    get = cas.add_parser("get", help="read a blob (raw bytes on stdout; with --json, base64 in $bytes)")
    get.add_argument("hash")
    get.add_argument("-o", "--output", help="write to FILE instead of stdout")

    journal = sub.add_parser(
        "journal", help="raw journals: append-only record logs, not worlds (for a world's journal: aos world journal)",
        description="Raw journals of the Journal service: named append-only logs of opaque records. "
                    "They are not worlds; `aos world journal ID` reads a world's journal.",
    ).add_subparsers(dest="action", required=True)
    append = journal.add_parser("append", help="append text records (creates the raw journal)")
    append.add_argument("journal", metavar="JOURNAL", help="raw journal name")
    append.add_argument("records", nargs="+")
    append.add_argument("--epoch", type=int, default=0)
    read = journal.add_parser("read", help="read records")
    read.add_argument("journal", metavar="JOURNAL", help="raw journal name")
    read.add_argument("--from", dest="from_seq", type=int, default=None, metavar="SEQ")
    read.add_argument("--limit", type=int, default=100, metavar="N", help=LIMIT_HELP)
    tail = journal.add_parser("tail", help="follow new records until Ctrl-C")
    tail.add_argument("journal", metavar="JOURNAL", help="raw journal name")
    tail.add_argument("--from", dest="from_seq", type=int, default=None)
    journal.add_parser("ls", help="list raw journals (worlds: aos world ls)")

    from aos.cli_agent import add_parser as add_agent_parser

    add_agent_parser(sub)
    from aos.cli_factory import add_parser as add_factory_parser

    add_factory_parser(sub)
    from aos.console.cli import add_parser as add_console_parser

    add_console_parser(sub)
    world = sub.add_parser("world", help="hosted worlds").add_subparsers(dest="action", required=True)
    create = world.add_parser("create", help="create a world from a bundle directory (manifest.json + modules)")
    create.add_argument("bundle")
    create.add_argument("--id", default="", help="world id (default: generated)")
    create.add_argument("--name", default="")
    create.add_argument("--grant-root", default=None, metavar="DIR", help="substitute ${AOS_GRANT_ROOT} in the manifest")
    world.add_parser("ls", help="list worlds")
    send = world.add_parser(
        "send", help="send an event (exit 3: journaled, but every workflow it reached trapped)",
        description="Send an event. Prints its journal position; each workflow that trapped on it is named on "
                    "stderr with the trap's message. Exit status: 0; 1 if it was refused (nothing journaled); "
                    "3 if it was journaled but every workflow it reached trapped (sending it again repeats it).")
    send.add_argument("world")
    send.add_argument("schema")
    send.add_argument("value", help="the event value as JSON")
    state = world.add_parser("state", help="read state (all workflows, or one)")
    state.add_argument("world")
    state.add_argument("workflow", nargs="?")
    state.add_argument("--key", default=None, help="cell key as JSON (needs a keyed WORKFLOW)")
    wjournal = world.add_parser("journal", help="read the journal (or follow it with --tail)")
    wjournal.add_argument("world")
    wjournal.add_argument("--from", dest="from_seq", type=int, default=None, metavar="SEQ")
    wjournal.add_argument("--limit", type=int, default=100, metavar="N", help=LIMIT_HELP)
    wjournal.add_argument("--tail", action="store_true",
                          help="then follow new records until Ctrl-C (starts after the last N shown)")
    snap = world.add_parser("snapshot", help="snapshot into CAS")
    snap.add_argument("world")
    for verb, text in (("pause", "stop a world taking inputs: events, timer firings and messages queue until resume"),
                       ("resume", "deliver what queued while paused, then take inputs again")):
        world.add_parser(verb, help=text).add_argument("world")
    release = world.add_parser("unquarantine", help="let a quarantined world wake again (after fixing what stopped it)")
    release.add_argument("world")
    fork = world.add_parser("fork", help="start a new world from this one's state")
    fork.add_argument("world")
    fork.add_argument("--id", default="")
    fork.add_argument("--name", default="")
    hand = world.add_parser("release", help="hand a world over: durable in shared storage, then gone from this kernel",
                            description="Release a world from a kernel on shared storage (aos-kernel --storage): its "
                            "commits finish, its running effects stop (their intents restart where it wakes next), "
                            "everything it committed is written to shared storage, and this kernel drops it. The "
                            "kernel that gets its next event, or `aos world acquire ID`, holds it next.")
    hand.add_argument("world")
    take = world.add_parser("acquire", help="take a world from shared storage and wake it on this kernel",
                            description="Acquire a released world and wake it here: open intents restart, pending "
                            "timers fire here. A world another kernel holds is refused, unless --take-over.")
    take.add_argument("world")
    take.add_argument("--take-over", action="store_true",
                      help="also take a world another kernel holds without having released it (a dead host's): "
                      "that kernel's log is fenced, so it stops writing, for all its worlds")
    from aos.cli_cluster import add_parsers as add_cluster_parsers

    add_cluster_parsers(sub, world)
    from aos.cli_governance import add_parsers as add_governance_parsers

    add_governance_parsers(sub, world)  # aos world propose|shadow|approve|reject|apply|rollback|history|manifest, aos demiurge
    return parser


class _Subparsers:
    """add_parser that gives every (sub)command the common options."""

    def __init__(self, action: Any, common: argparse.ArgumentParser) -> None:
        self._action = action
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        parser = self._action.add_parser(name, parents=[self._common], **kwargs)
        original = parser.add_subparsers

        def add_subparsers(**sub_kwargs: Any) -> _Subparsers:
            return _Subparsers(original(**sub_kwargs), self._common)

        parser.add_subparsers = add_subparsers  # type: ignore[method-assign]
        return parser


def _show(record: bytes) -> str:
    try:
        return record.decode()
    except UnicodeDecodeError:
        return f"<{len(record)} bytes>"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def dump_json(value: Any, pretty: bool = False) -> str:
    """The one JSON spelling of the CLI: sorted keys, byte strings as ``{"$bytes": "<base64>"}``."""
    return json.dumps(jsonvalue.to_jsonable(value), indent=2 if pretty else None, sort_keys=True)


def _data(record: bytes, as_json: bool) -> Any:
    """A raw record for showing: its text, else (JSON) its bytes or (people) its size."""
    try:
        return record.decode()
    except UnicodeDecodeError:
        return record if as_json else f"<{len(record)} bytes>"


async def _run(args: argparse.Namespace) -> Any:
    from aos.cli_live import LiveView

    conn, held = await cli_connect.connect(args)
    with contextlib.closing(conn):
        if held.info.kind in ("scheduler", "universe"):  # a cluster: aos/cli_cluster.py
            from aos.cli_cluster import run_on_scheduler

            return await run_on_scheduler(args, conn, held)
        if args.command == "status":
            return await (await held.kernel("status")).status()
        if args.command == "cas":
            cas = await held.cas(args)
            if args.action == "put":
                if args.file == "-":
                    data = sys.stdin.buffer.read()
                else:
                    with open(args.file, "rb") as f:
                        data = f.read()
                return {"hash": await cas.put(data), "size": len(data)}
            data = await cas.get(args.hash)
            if args.output:
                with open(args.output, "wb") as f:
                    f.write(data)
                return {"hash": args.hash, "size": len(data), "file": args.output}
            if args.json:
                return {"hash": args.hash, "size": len(data), "data": data}
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return None
        if args.command == "world":
            from aos.cli_world import run_world

            return await run_world(args, await held.worlds(args), conn)
        journal = await held.journal(args)
        if args.action == "ls":
            return {"journals": await journal.list()}
        if args.action == "append":
            try:
                next_seq, epoch = await journal.head(args.journal)
            except AosError:
                next_seq, epoch = 0, 0
            records = [r.encode() for r in args.records]
            seq = await journal.append(args.journal, next_seq, max(epoch, args.epoch), records)
            return {"journal": args.journal, "seq": seq, "count": len(records)}
        if args.action == "read":
            start = args.from_seq
            if start is None:  # the last N, as `journal` in aos-shell shows them
                start = max(0, (await journal.head(args.journal))[0] - args.limit)
            records, next_seq = await journal.read(args.journal, start, args.limit)
            return {"journal": args.journal, "nextSeq": next_seq,
                    "records": [{"seq": start + i, "data": _data(r, args.json)} for i, r in enumerate(records)]}
        # tail
        start = args.from_seq if args.from_seq is not None else (await journal.head(args.journal))[0]
        view = LiveView(conn)

        async def on_records(seq: int, records: list[bytes]) -> None:
            for i, record in enumerate(records):
                view.print(dump_json({"seq": seq + i, "data": _data(record, True)}) if args.json
                           else f"{seq + i:>8}  {_data(record, False)}")

        subscription = await journal.tail(args.journal, start, on_records)
        try:
            await view.wait(f"following raw journal {args.journal}")
        finally:
            del subscription
        return None


def _print(args: argparse.Namespace, result: Any) -> None:
    if result is None:
        return
    if args.json:
        print(dump_json(result, pretty=True))
        return
    if args.command == "world":
        from aos.cli_world import print_world

        print_world(args, result)
        return
    if args.command == "status":
        limits = result["limits"]
        print(f"aos-kernel {result['version']}  data {result['dataDir']}")
        print(f"connections {result['connections']}  worlds {result.get('hostedWorlds', 0)}  "
              f"raw journals {result.get('rawJournals', 0)}  "
              f"commits {result['commitTurns']} ({result['committedRecords']} records)")
        print(f"limits: message {human_size(limits['maxMessageBytes'])}, blob {human_size(limits['maxBlobBytes'])}, "
              f"{limits['maxRecordsPerAppend']} records/append")
    elif "hash" in result:
        print(f"{result['hash']}  {human_size(result['size'])}")
    elif "records" in result:
        for record in result["records"]:
            print(f"{record['seq']:>8}  {record['data']}")
        print(f"(next seq {result['nextSeq']})")
    elif "journals" in result:
        print("\n".join(result["journals"]) or "(no raw journals)")
    elif "seq" in result:
        print(f"appended {result['count']} record(s) to journal {result['journal']} at seq {result['seq']}")


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_main(argv))


def run_main(argv: list[str] | None = None) -> int:
    """The exit status of ``aos ARGV``. The one place a failure becomes a line on stderr
    (``aos.cli_errors``): no exception leaves as a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure, ours or not, is one line (cli_errors.describe)
        report("aos", exc)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from aos.cli_live import silence_stdout

    if args.command == "demo":
        from aos.cli_demo import demo

        return demo(args.json)
    if args.command == "agent":
        from aos.cli_agent import main as agent_main

        return agent_main(args)
    if args.command == "factory":
        from aos.cli_factory import main as factory_main

        return factory_main(args)
    if args.command == "demiurge":
        from aos.cli_demiurge import main as demiurge_main

        return demiurge_main(args)
    if args.command == "world" and args.action in ("propose", "shadow", "approve", "reject", "apply", "rollback",
                                                  "history", "manifest"):
        from aos.cli_governance import main as governance_main

        return governance_main(args)
    if args.command == "console":
        from aos.console.cli import run_console

        return run_console(args)
    if args.command in ("cluster", "universe") or (args.command == "world" and args.action in ("where", "move")):
        from aos.cli_cluster import main as cluster_main

        return cluster_main(args)
    from aos.kernel.client import run

    result = run(_run(args))
    try:
        _print(args, result)
    except BrokenPipeError:
        # the reader (e.g. `| head`) left after what it wanted; that is not an error of ours
        silence_stdout()
    if args.command == "world":
        from aos.cli_world import exit_status

        return exit_status(result)
    return 0


if __name__ == "__main__":
    main()
