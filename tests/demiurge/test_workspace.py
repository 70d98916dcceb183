"""Workspaces: versioned trees of files in CAS, as a Python API and as ``sys/workspace.*@1`` effects.

The Python API runs over any object store (``MemoryStore`` here); the effects
run in a real kernel for a scripted workflow, under a ``workspace`` grant that
names the workspaces it may use and may be read-only. A workspace's ref is
journaled, so it survives a kernel restart.
"""

from __future__ import annotations

import os
import sys

import pytest

from aos.kernel.client import Connection, run
from aos.kernel.world.workspace import MemoryStore, Workspace, WorkspaceError, check_path
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "security"))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

OPS = ("read", "write", "list", "diff", "commit", "log")


def test_write_commit_diff_and_log_like_git():
    """Commits are trees plus parents; diff shows unified changes; the same content has the same tree hash."""
    ws = Workspace(MemoryStore())
    ws.write("src/a.c", "int a;\n")
    ws.write("README", "hello\n")
    first = ws.commit("first", 1)
    ws.write("src/a.c", "int a = 1;\n")
    ws.delete("README")
    changes = ws.diff()
    assert [(c["path"], c["status"]) for c in changes] == [("README", "deleted"), ("src/a.c", "modified")]
    assert "-int a;\n+int a = 1;\n" in changes[1]["diff"]
    second = ws.commit("second", 2)
    assert [(h, c.message) for h, c in ws.log()] == [(second, "second"), (first, "first")]
    assert ws.read("README", at=first) == b"hello\n" and ws.list() == ["src/a.c"]
    again = Workspace(ws.store)
    again.write("src/a.c", "int a = 1;\n")
    assert again.ref.tree == ws.ref.tree  # content-addressed: same files, same tree
    reopened = Workspace(ws.store, ws.ref)
    assert reopened.read("src/a.c") == b"int a = 1;\n" and reopened.diff(first, second) == ws.diff(first, second)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a\\b", "x" * 300, "a\nb"])
def test_bad_paths_are_refused(path):
    """Paths are relative, without empty, '.' or '..' parts, printable and at most 256 characters."""
    with pytest.raises(WorkspaceError):
        check_path(path)


def test_a_file_and_a_directory_of_one_name_cannot_both_exist():
    """``a`` and ``a/b`` are not both files of one tree."""
    ws = Workspace(MemoryStore())
    ws.write("a/b", "x")
    with pytest.raises(WorkspaceError, match="cannot both exist"):
        ws.write("a", "y")


def _doc(params: dict) -> dict:
    return hostile_manifest({f"sys/workspace.{op}@1": declared("workspace") for op in OPS},
                            {"ws": {"cap": "workspace", "params": params}})


async def _run_ops(world, steps: list[dict]) -> list:
    """Send each effect in its own event and wait for its receipt: ``[(status, payload), ...]``."""
    out = []
    for effect in steps:
        await world.send(SCRIPT, {"effects": [effect]})

        async def arrived(n=len(out) + 1):
            state = await world.state(WORKFLOW)
            return state["receipts"] if state and len(state["receipts"]) >= n else None

        receipts = await wait_until(arrived)
        out.append((receipts[-1][1], receipts[-1][2]))
    return out


def _ws(op: str, **params) -> dict:
    return {"effect": f"sys/workspace.{op}@1", "params": {"workspace": params.pop("workspace", "src"), **params}}


def test_workspace_effects_through_a_kernel_and_their_refs_survive_a_restart(data_dir):
    """write, commit, diff, read and log work as effects; the ref is journaled and read back after a restart."""
    kernel = KernelProcess(data_dir).start()
    try:
        async def first() -> list:
            async with await Connection.open(kernel.address) as conn:
                worlds = await (await conn.restore_kernel(kernel.admin_token)).worlds("u")
                world, _ = await worlds.create(_doc({"workspaces": ["src"]}), {}, "w")
                return await _run_ops(world, [
                    _ws("write", path="m.wat", content="(module)"), _ws("commit", message="empty module"),
                    _ws("write", path="m.wat", content="(module (memory 1))"), _ws("diff"),
                    _ws("write", path="x", content="nope", workspace="other"), _ws("read", path="../etc")])

        results = run(first())
        assert [r[0] for r in results] == ["ok", "ok", "ok", "ok", "error", "error"]
        assert "+(module (memory 1))" in results[3][1]["output"]
        assert results[4][1]["error"] == "refused" and "workspace 'other' is not granted" in results[4][1]["message"]
        assert results[5][1]["error"] == "Workspace"
        kernel.kill()
        kernel = KernelProcess(data_dir).start()

        async def second() -> list:
            async with await Connection.open(kernel.address) as conn:
                world = await (await (await conn.restore_kernel(kernel.admin_token)).worlds("u")).open("w")
                return await _run_ops(world, [_ws("read", path="m.wat"), _ws("log"), _ws("list")])

        read, log, listed = run(second())
        assert read[1]["output"] == "(module (memory 1))"  # the working tree, uncommitted, survived
        assert '"message": "empty module"' in log[1]["output"] and listed[1]["output"].startswith("m.wat")
    finally:
        kernel.kill()


def test_a_read_only_workspace_grant_refuses_writes_and_commits(kernel):
    """Under ``read_only`` the admission refuses write and commit; list still works."""

    async def main() -> list:
        async with await Connection.open(kernel.address) as conn:
            worlds = await (await conn.restore_kernel(kernel.admin_token)).worlds("u")
            world, _ = await worlds.create(_doc({"read_only": True}), {}, "ro")
            return await _run_ops(world, [_ws("write", path="a", content="x"), _ws("commit", message="m"),
                                          _ws("list")])

    write, commit, listed = run(main())
    assert write[0] == commit[0] == "error" and "read-only" in write[1]["message"] + commit[1]["message"]
    assert listed[0] == "ok"
