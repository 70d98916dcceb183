"""The command layer without a terminal: a ``Runner`` writing to strings, against a real kernel."""

from __future__ import annotations

import io
import os

from aos.kernel.client import run
from aos.shell.runner import Outcome, Runner
from aos.shell.session import Session, Target

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COUNTER = os.path.join(REPO, "examples", "counter")


def _runner(kernel) -> Runner:
    session = Session(Target(kernel.address, kernel.token_path, "k"))
    return Runner(session, out=io.StringIO(), err=io.StringIO(), spinner=False)


def _take(stream: io.StringIO) -> str:
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return text


def test_world_commands_create_enter_send_read_snapshot_and_fork(kernel):
    """Each world command does its job and says so in plain text; the location follows `world` and `world ..`."""

    async def main():
        r = _runner(kernel)
        out = {}
        for key, line in (
            ("create", f"create {COUNTER} --id c1"),
            ("enter", "world c1"),
            ("send", 'send demo/CounterEvent@1 {"by": 4}'),
            ("cell", 'send demo/CellEvent@1 {"by": 2, "id": "a"}'),
            ("state", "state"),
            ("one", "state demo/counter@1"),
            ("key", 'state demo/cells@1 --key "a"'),
            ("cells", "cells demo/cells@1"),
            ("journal", "journal --limit 3"),
            ("snapshot", "snapshot"),
            ("fork", "fork --id c2"),
            ("worlds", "worlds"),
        ):
            assert await r.run_text(line) is Outcome.OK, (line, r.err.getvalue())
            out[key] = _take(r.out)
            if key == "enter":
                assert r.session.where() == "k:default/c1"
        await r.run_text("world ..")
        where = r.session.where()
        r.session.close()
        return out, where, r.err.getvalue()

    out, where, err = run(main())
    assert err == "" and where == "k:default"
    assert out["create"].startswith("created world c1 (demo/counter), journal height 1\n")
    assert out["send"] == "event journaled at seq 1\n"
    assert 'demo/counter@1: {\n  "count": 4\n}' in out["state"] and "demo/cells@1: {" in out["state"]
    assert out["one"] == 'demo/counter@1: {\n  "count": 4\n}\n'
    assert out["key"] == 'demo/cells@1: {\n  "count": 2\n}\n'
    assert out["cells"] == "a\n(1 cell)\n"
    journal = out["journal"].splitlines()
    assert len(journal) == 4 and journal[-1].startswith("(next seq ")
    assert out["snapshot"].startswith("snapshot sha256:")
    assert out["fork"].startswith("forked world c2 (demo/counter (fork)) from c1")
    rows = [line.split() for line in out["worlds"].splitlines()]
    assert rows[0] == ["ID", "NAME", "STATE", "JOURNAL", "LAST", "EVENT"]
    assert [row[0] for row in rows[1:]] == ["*", "c2"] and rows[1][1] == "c1"


def test_cas_put_and_get_round_trip_files_and_text(kernel, tmp_path):
    """`cas put` prints hash and size; `cas get` shows text, saves to a file, and won't dump binary on the screen."""
    text_file, binary_file, copy = tmp_path / "note.txt", tmp_path / "blob.bin", tmp_path / "copy.bin"
    text_file.write_text("hello, worlds\n")
    binary_file.write_bytes(bytes(range(256)) * 8)

    async def main():
        r = _runner(kernel)
        await r.run_text(f"cas put {text_file}")
        text_hash, size = _take(r.out).split()[0], None
        await r.run_text(f"cas put {binary_file}")
        line = _take(r.out)
        binary_hash, size = line.split()[0], line.split(None, 1)[1].strip()
        await r.run_text(f"cas get {text_hash}")
        shown = _take(r.out)
        await r.run_text(f"cas get {binary_hash}")
        refused = _take(r.out)
        await r.run_text(f"cas get {binary_hash} {copy}")
        saved = _take(r.out)
        r.session.close()
        return text_hash, size, shown, refused, saved, r.err.getvalue()

    text_hash, size, shown, refused, saved, err = run(main())
    assert err == "" and text_hash.startswith("sha256:") and size == "2.0 KiB"
    assert shown == "hello, worlds\n"
    assert refused == "(2.0 KiB of binary data: give a FILE to save it)\n"
    assert saved == f"wrote 2.0 KiB to {copy}\n" and copy.read_bytes() == binary_file.read_bytes()


def test_errors_are_one_line_and_stop_the_rest_of_the_line(kernel):
    """A failing command prints `error: <Code>: ...` on stderr and the commands after it on the same line do not run."""

    async def main():
        r = _runner(kernel)
        results = {}
        for line in ("frobnicate", "agent new", "send demo/E@1 {}", "world nope; universe",
                     "help nope", "world a b", "universe other; universe"):
            results[line] = (await r.run_text(line), _take(r.err), _take(r.out))
        r.session.close()
        return results

    results = run(main())
    assert results["frobnicate"][:2] == (
        Outcome.ERROR, "error: UnknownCommand: 'frobnicate' is not a command (type `help` for the list)\n")
    assert results["agent new"][1].startswith("error: PermissionDenied: the kernel at ")
    assert f"does not grant {os.path.realpath(os.getcwd())}: start a kernel that does (aos-kernel --grant-host " \
        in results["agent new"][1] and results["agent new"][1].count("\n") == 1
    assert results["send demo/E@1 {}"][1].startswith("error: InvalidArgument: not in a world")
    assert results["world nope; universe"] == (
        Outcome.ERROR, "error: UnknownWorld: no world 'nope' in universe default\n", "")
    assert results["help nope"][1].startswith("error: UnknownCommand: 'nope'")
    assert results["world a b"][1] == "error: InvalidArgument: usage: world ID | world ..\n"
    assert results["universe other; universe"] == (
        Outcome.OK, "", "now in universe other\nuniverse other has no worlds yet (universes need no creation: if "
        "that is a typo, `universe default` goes back)\nuniverse other\n")


def test_a_lost_kernel_fails_one_command_and_the_next_reconnects(kernel):
    """After the kernel restarts, the first call fails with KernelUnavailable and the next one reconnects and works."""

    async def main():
        r = _runner(kernel)
        assert await r.run_text(f"create {COUNTER} --id r; world r") is Outcome.OK
        _take(r.out)
        kernel.stop()
        kernel.start()
        first = (await r.run_text("state demo/counter@1"), _take(r.err))
        second = (await r.run_text("state demo/counter@1"), _take(r.err), _take(r.out))
        r.session.close()
        return first, second

    first, second = run(main())
    assert first[0] is Outcome.ERROR and first[1].startswith("error: KernelUnavailable: ")
    assert second == (Outcome.OK, f"reconnected to {kernel.address}\n", "(no state for demo/counter@1)\n")
