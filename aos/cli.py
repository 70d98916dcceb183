"""``aos``: talk to a running kernel from the command line.

    aos status
    aos cas put FILE|-            aos cas get HASH [-o FILE]
    aos journal append JOURNAL TEXT...   aos journal read JOURNAL   aos journal tail JOURNAL
    aos journal ls
    aos world ...                 hosted worlds (aos/cli_world.py)
    aos demo                      start a kernel on embedded defaults and show it working

Global options pick the kernel (``--connect``, ``$AOS_CONNECT``), the token
(``--token-file``, default the local kernel's admin token) and the universe.
Output is for people; ``--json`` prints one JSON document for programs.
Errors are one line on stderr and exit status 1.

``aos journal`` works on *raw journals*: named, append-only record logs of the
Journal service (journal.capnp) that any client may write. They are not
worlds: a world's journal is written only by the kernel and read with
``aos world journal``, and a raw journal named ``w1`` has nothing to do with a
world ``w1``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from aos.errors import AosError
from aos.kernel.config import default_data_dir


def _default_connect() -> str:
    return os.environ.get("AOS_CONNECT") or "unix:" + os.path.join(os.environ.get("AOS_DATA") or default_data_dir(), "kernel.sock")


def _default_token_file() -> str:
    return os.environ.get("AOS_TOKEN_FILE") or os.path.join(os.environ.get("AOS_DATA") or default_data_dir(), "admin.token")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aos", description="Command-line client for an AOS kernel.")
    parser.add_argument("--connect", default=None, metavar="ADDR", help="kernel address (default: the local kernel)")
    parser.add_argument("--token-file", default=None, metavar="FILE", help="token to restore (default: local admin token)")
    parser.add_argument("--universe", "-u", default=os.environ.get("AOS_UNIVERSE", "default"))
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    # --json is also accepted after the subcommand; SUPPRESS keeps the global value otherwise
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for programs")
    sub = _Subparsers(parser.add_subparsers(dest="command", required=True), common)

    sub.add_parser("status", help="kernel status and limits")
    sub.add_parser("demo", help="start a kernel on embedded defaults and exercise it")

    cas = sub.add_parser("cas", help="content-addressed blobs").add_subparsers(dest="action", required=True)
    put = cas.add_parser("put", help="store a file (or - for stdin)")
    put.add_argument("file")
    get = cas.add_parser("get", help="read a blob")
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
    read.add_argument("--from", dest="from_seq", type=int, default=0)
    read.add_argument("--limit", type=int, default=100)
    tail = journal.add_parser("tail", help="follow new records until Ctrl-C")
    tail.add_argument("journal", metavar="JOURNAL", help="raw journal name")
    tail.add_argument("--from", dest="from_seq", type=int, default=None)
    journal.add_parser("ls", help="list raw journals (worlds: aos world ls)")

    from aos.cli_agent import add_parser as add_agent_parser

    add_agent_parser(sub)
    world = sub.add_parser("world", help="hosted worlds").add_subparsers(dest="action", required=True)
    create = world.add_parser("create", help="create a world from a bundle directory (manifest.json + modules)")
    create.add_argument("bundle")
    create.add_argument("--id", default="", help="world id (default: generated)")
    create.add_argument("--name", default="")
    create.add_argument("--grant-root", default=None, metavar="DIR", help="substitute ${AOS_GRANT_ROOT} in the manifest")
    world.add_parser("ls", help="list worlds")
    send = world.add_parser("send", help="send an event")
    send.add_argument("world")
    send.add_argument("schema")
    send.add_argument("value", help="the event value as JSON")
    state = world.add_parser("state", help="read state (all workflows, or one)")
    state.add_argument("world")
    state.add_argument("workflow", nargs="?")
    state.add_argument("--key", default=None, help="cell key as JSON")
    wjournal = world.add_parser("journal", help="read the journal (or follow it with --tail)")
    wjournal.add_argument("world")
    wjournal.add_argument("--from", dest="from_seq", type=int, default=0)
    wjournal.add_argument("--limit", type=int, default=100)
    wjournal.add_argument("--tail", action="store_true")
    snap = world.add_parser("snapshot", help="snapshot into CAS")
    snap.add_argument("world")
    fork = world.add_parser("fork", help="start a new world from this one's state")
    fork.add_argument("world")
    fork.add_argument("--id", default="")
    fork.add_argument("--name", default="")
    return parser


class _Subparsers:
    release = world.add_parser("unquarantine", help="let a quarantined world wake again (after fixing what stopped it)")
    release.add_argument("world")
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


async def _run(args: argparse.Namespace) -> Any:
    from aos.kernel.client import Connection

    connect = args.connect or _default_connect()
    token_file = args.token_file or _default_token_file()
    try:
        with open(token_file) as f:
            token = f.read().strip()
    except OSError as exc:
        raise AosError(f"cannot read token file {token_file}: {exc.strerror}; is aos-kernel running?") from None
    async with await Connection.open(connect) as conn:
        admin = await conn.restore_kernel(token)
        if args.command == "status":
            return await admin.status()
        if args.command == "cas":
            cas = await admin.cas(args.universe)
            if args.action == "put":
                data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
                return {"hash": await cas.put(data), "size": len(data)}
            data = await cas.get(args.hash)
            if args.output:
                with open(args.output, "wb") as f:
                    f.write(data)
                return {"hash": args.hash, "size": len(data), "file": args.output}
            sys.stdout.buffer.write(data)
            return None
        if args.command == "world":
            from aos.cli_world import run_world

            return await run_world(args, await admin.worlds(args.universe))
        journal = await admin.journal(args.universe)
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
            records, next_seq = await journal.read(args.journal, args.from_seq, args.limit)
            return {"journal": args.journal, "records": [{"seq": args.from_seq + i, "data": _show(r)} for i, r in enumerate(records)], "nextSeq": next_seq}
        # tail
        start = args.from_seq if args.from_seq is not None else (await journal.head(args.journal))[0]
        done = asyncio.Event()

        async def on_records(seq: int, records: list[bytes]) -> None:
            for i, record in enumerate(records):
                line = json.dumps({"seq": seq + i, "data": _show(record)}) if args.json else f"{seq + i:>8}  {_show(record)}"
                print(line, flush=True)

        subscription = await journal.tail(args.journal, start, on_records)
        try:
            await done.wait()
        finally:
            del subscription
        return None


def _print(args: argparse.Namespace, result: Any) -> None:
    if result is None:
        return
    if args.json:
        from aos.kernel.host.jsonvalue import to_jsonable  # world records carry bytes (stamps): {"$bytes": ...}

        print(json.dumps(to_jsonable(result), indent=2, sort_keys=True))
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


def demo() -> int:
    """Start a kernel on embedded defaults in a scratch directory and exercise it."""
    from aos.kernel.client import Connection, run
    from aos.kernel.process import KernelProcess

    scratch = tempfile.mkdtemp(prefix="aos-demo-")
    print(f"starting aos-kernel (data {scratch}) ...", flush=True)
    kernel = KernelProcess(scratch).start()
    for line in kernel.output:
        print("  | " + line)

    async def walk() -> None:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("demo")
            address = await cas.put(b"hello, worlds")
            print(f"cas put     -> {address}")
            print(f"cas get     -> {(await cas.get(address)).decode()!r} (verified against its hash)")
            journal = await admin.journal("demo")
            seq = await journal.append("tally", 0, 1, [b"+1", b"+1", b"+1"])
            records, next_seq = await journal.read("tally")
            print(f"journal     -> appended 3 records to raw journal 'tally' at seq {seq}; "
                  f"read back {[r.decode() for r in records]}")
            try:
                await journal.append("tally", 0, 1, [b"+1"])
            except AosError as exc:
                print(f"stale write -> refused: {type(exc).__name__}: {exc}")
            limited = await journal.restrict("tally", read_only=True)
            token = await limited.save()
            print(f"attenuate   -> read-only cap for raw journal 'tally' saved as a token ({len(token)} chars)")
            await limited.revoker.revoke()
            try:
                await (await conn.restore_as(token)).read("tally")
            except AosError as exc:
                print(f"revoke      -> token now fails: {type(exc).__name__}")
            await _demo_world(admin)
            status = await admin.status()
            print(f"status      -> {status['hostedWorlds']} world(s), {status['rawJournals']} raw journal(s), "
                  f"{status['commitTurns']} synced group commits")

    try:
        run(walk())
    finally:
        code = kernel.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"kernel stopped (exit {code}). Run your own with: aos-kernel --data DIR", flush=True)
    return 0 if code == 0 else 1


async def _demo_world(admin: Any) -> None:
    """A counter world from examples/ (when run from a checkout): events in, state out, replayable."""
    from pathlib import Path

    from aos.cli_world import load_bundle_doc

    bundle = Path(__file__).resolve().parents[1] / "examples" / "counter"
    if not (bundle / "manifest.json").exists():
        return
    doc, wasm = load_bundle_doc(str(bundle), None)
    worlds = await admin.worlds("demo")
    world, info = await worlds.create(doc, wasm, "counter")
    seqs = await world.send_batch([("demo/CounterEvent@1", {"by": n}) for n in (1, 2, 3)])
    wasm_state = await world.state("demo/counter@1")
    py_state = await world.state("demo/counter_py@1")
    print(f"world       -> created {info['worldId']} from examples/counter; 3 events journaled at seqs {seqs}")
    print(f"state       -> WASM counter {wasm_state}, Python counter {py_state}")
    address, seq = await world.snapshot()
    print(f"snapshot    -> {address[:23]}... at journal seq {seq} (replay from there gives the same state)")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        sys.exit(demo())
    if args.command == "agent":
        from aos.cli_agent import main as agent_main

        agent_main(args)
    from aos.kernel.client import run

    try:
        result = run(_run(args))
    except AosError as exc:
        print(f"aos: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    try:
        _print(args, result)
    except BrokenPipeError:
        # the reader (e.g. `| head`) left; that is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.command == "world":
        from aos.cli_world import exit_status

        sys.exit(exit_status(result))


if __name__ == "__main__":
    main()
