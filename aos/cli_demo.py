"""``aos demo``: start a kernel on embedded defaults in a scratch directory and exercise it.

For people it prints a line per step; with ``--json`` one JSON document (the
CLI's spelling: bytes as ``{"$bytes": "<base64>"}``) once the kernel stopped.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from aos.cli import dump_json
from aos.cli_connect import kernel_command
from aos.errors import AosError


class _Steps:
    """What the demo shows: a line per step for people, or (``--json``) one document at the end."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.doc: dict[str, Any] = {}

    def say(self, key: str, value: Any, line: str) -> None:
        if self.as_json:
            self.doc[key] = value
        else:
            print(line, flush=True)


def demo(as_json: bool = False) -> int:
    """Start a kernel on embedded defaults in a scratch directory and exercise it."""
    from aos.kernel.client import Connection, run
    from aos.kernel.process import KernelProcess

    steps = _Steps(as_json)
    scratch = tempfile.mkdtemp(prefix="aos-demo-")
    if not as_json:
        print(f"starting aos-kernel (data {scratch}) ...", flush=True)
    kernel = KernelProcess(scratch, exit_with_parent=True).start()
    steps.say("kernel", {"data": scratch, "output": kernel.output}, "\n".join("  | " + line for line in kernel.output))

    async def walk() -> None:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("demo")
            address = await cas.put(b"hello, worlds")
            data = await cas.get(address)
            steps.say("cas", {"put": address, "get": data}, f"cas put     -> {address}\n"
                      f"cas get     -> {data.decode()!r} (verified against its hash)")
            journal = await admin.journal("demo")
            seq = await journal.append("tally", 0, 1, [b"+1", b"+1", b"+1"])
            records, next_seq = await journal.read("tally")
            steps.say("journal", {"journal": "tally", "seq": seq, "records": records, "nextSeq": next_seq},
                      f"journal     -> appended 3 records to raw journal 'tally' at seq {seq}; "
                      f"read back {[r.decode() for r in records]}")
            try:
                await journal.append("tally", 0, 1, [b"+1"])
            except AosError as exc:
                steps.say("staleWrite", {"refused": type(exc).__name__, "message": str(exc)},
                          f"stale write -> refused: {type(exc).__name__}: {exc}")
            limited = await journal.restrict("tally", read_only=True)
            token = await limited.save()
            steps.say("attenuate", {"journal": "tally", "readOnly": True, "tokenChars": len(token)},
                      f"attenuate   -> read-only cap for raw journal 'tally' saved as a token ({len(token)} chars)")
            await limited.revoker.revoke()
            try:
                await (await conn.restore_as(token)).read("tally")
            except AosError as exc:
                steps.say("revoke", {"tokenNowFails": type(exc).__name__},
                          f"revoke      -> token now fails: {type(exc).__name__}")
            await _demo_world(admin, steps)
            status = await admin.status()
            steps.say("status", status, f"status      -> {status['hostedWorlds']} world(s), "
                      f"{status['rawJournals']} raw journal(s), {status['commitTurns']} synced group commits")

    try:
        run(walk())
    finally:
        code = kernel.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    hint = f"{kernel_command()} --data DIR"
    steps.say("stopped", {"exitCode": code, "runYourOwn": hint},
              f"kernel stopped (exit {code}). Run your own with: {hint}")
    if as_json:
        print(dump_json(steps.doc, pretty=True), flush=True)
    return 0 if code == 0 else 1


async def _demo_world(admin: Any, steps: _Steps) -> None:
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
    address, seq = await world.snapshot()
    steps.say("world", {"worldId": info["worldId"], "eventSeqs": seqs,
                        "state": {"demo/counter@1": wasm_state, "demo/counter_py@1": py_state},
                        "snapshot": {"address": address, "seq": seq}},
              f"world       -> created {info['worldId']} from examples/counter; 3 events journaled at seqs {seqs}\n"
              f"state       -> WASM counter {wasm_state}, Python counter {py_state}\n"
              f"snapshot    -> {address[:23]}... at journal seq {seq} (replay from there gives the same state)")
