"""Class 9: a hard link inside a host.fs root never lets a write reach the file's other names.

The world (or anyone) links a name inside the root to a file outside it.
Every host.fs change through that name is refused ``hard_link`` and the
outside file keeps its bytes and its link count: write (replace, append,
truncate, exclusive create), edit, apply_patch (update, delete, move, and a
move onto it), delete and move. Reading through the link is allowed (see
docs/security.md for why). One variant goes through a real kernel world.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from aos.adapters.base import EffectCall, Receipt
from aos.adapters.host_fs import HostFsAdapter
from aos.adapters.host_fs_tools import HostFsToolsAdapter
from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

FS, TOOLS = HostFsAdapter(), HostFsToolsAdapter()
SECRET = "outside the root\nsecond line\n"


def call(kind: str, params: dict[str, Any], root: Path) -> Receipt:
    adapter = TOOLS if kind in TOOLS.kinds else FS

    async def sink(frame: Any) -> None:
        pass

    return asyncio.run(adapter.run(EffectCall(kind, params, {"root": str(root)}, "k"), sink))


def P(*body: str) -> str:
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"]) + "\n"


@pytest.fixture
def linked(tmp_path: Path) -> dict[str, Path]:
    """root/link.txt is a hard link to outside/secret.txt; root/plain.txt is an ordinary file."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(SECRET)
    os.link(secret, root / "link.txt")
    (root / "plain.txt").write_text("plain\n")
    return {"root": root, "secret": secret, "link": root / "link.txt"}


def outside_untouched(linked: dict[str, Path]) -> bool:
    info = os.stat(linked["secret"])
    return linked["secret"].read_text() == SECRET and info.st_nlink == 2 and linked["link"].read_text() == SECRET


CHANGES = [
    ("host.fs.write", {"path": "link.txt", "content": "pwned\n"}),
    ("host.fs.write", {"path": "link.txt", "content": b"pwned\n", "encoding": "bytes"}),
    ("host.fs.write", {"path": "link.txt", "content": "pwned\n", "append": True}),
    ("host.fs.write", {"path": "link.txt", "content": ""}),  # truncate
    ("host.fs.write", {"path": "link.txt", "content": "", "append": True}),
    ("host.fs.write", {"path": "/link.txt", "content": "pwned\n"}),
    ("host.fs.write", {"path": "./sub/../link.txt", "content": "x"}),
    ("host.fs.edit", {"path": "link.txt", "old_string": "outside", "new_string": "pwned"}),
    ("host.fs.edit", {"path": "link.txt", "old_string": "outside  the root", "new_string": "pwned"}),  # tolerant
    ("host.fs.apply_patch", {"path": ".", "patch": P("*** Update File: link.txt", "@@", "-second line", "+pwned")}),
    ("host.fs.apply_patch", {"path": ".", "patch": P("*** Delete File: link.txt")}),
    ("host.fs.apply_patch", {"path": ".", "patch": P("*** Update File: link.txt", "*** Move to: moved.txt")}),
    ("host.fs.apply_patch", {"path": ".", "patch": P("*** Update File: link.txt", "*** Move to: moved.txt",
                                                     "@@", "-second line", "+pwned")}),
    ("host.fs.apply_patch", {"path": ".", "patch": P("*** Update File: plain.txt", "@@", "-plain", "+p",
                                                     "*** Update File: link.txt", "@@", "-second line", "+pwned")}),
    ("host.fs.delete", {"path": "link.txt"}),
    ("host.fs.move", {"src": "link.txt", "dst": "moved.txt"}),
    ("host.fs.move", {"src": "plain.txt", "dst": "link.txt", "overwrite": True}),
]


@pytest.mark.parametrize(("kind", "params"), CHANGES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CHANGES)])
def test_changes_through_a_hard_link_are_refused(linked, kind, params):
    """Each write, edit, patch, delete or move of a multiply-linked file is refused hard_link; the outside file and every other file are unchanged."""
    root = linked["root"]
    (root / "sub").mkdir()
    before = sorted(p.name for p in root.iterdir())
    r = call(kind, params, root)
    if "../" in str(params.get("path", "")):
        assert (r.status, r.error) == ("error", "path_escape")
    else:
        assert (r.status, r.error) == ("error", "hard_link"), r
        assert "hard links" in r.message
    assert outside_untouched(linked)
    assert (root / "plain.txt").read_text() == "plain\n"
    assert sorted(p.name for p in root.iterdir()) == before  # no temp files, nothing moved or added


def test_exclusive_create_onto_a_hard_link_is_refused(linked):
    """overwrite: false over the link is refused too (as a change to a linked file) and writes nothing."""
    r = call("host.fs.write", {"path": "link.txt", "content": "x", "overwrite": False}, linked["root"])
    assert (r.status, r.error) == ("error", "hard_link")
    assert outside_untouched(linked)


def test_a_link_between_two_names_inside_the_root_is_refused_too(linked):
    """Two names inside the root for one file are also refused: the rule is the link count, not where the other name is."""
    root = linked["root"]
    os.link(root / "plain.txt", root / "twin.txt")
    r = call("host.fs.write", {"path": "twin.txt", "content": "x", "append": True}, root)
    assert r.error == "hard_link" and (root / "plain.txt").read_text() == "plain\n"


def test_reading_and_searching_through_a_hard_link_is_allowed(linked):
    """read, stat and grep of the linked name work: the bytes are what that name shows."""
    root = linked["root"]
    assert call("host.fs.read", {"path": "link.txt"}, root).payload["content"] == SECRET
    r = call("host.fs.grep", {"pattern": "second"}, root)
    assert [m["path"] for m in r.payload["matches"]] == ["link.txt"]


def test_ordinary_files_are_still_written(linked):
    """A file with one link is written, appended, edited and patched as before (the check refuses only shared files)."""
    root = linked["root"]
    assert call("host.fs.write", {"path": "plain.txt", "content": "a\n", "append": True}, root).status == "ok"
    assert call("host.fs.edit", {"path": "plain.txt", "old_string": "a\n", "new_string": "b\n"}, root).status == "ok"
    r = call("host.fs.apply_patch", {"path": ".", "patch": P("*** Update File: plain.txt", "@@", "-b", "+c")}, root)
    assert r.status == "ok" and (root / "plain.txt").read_text() == "plain\nc\n"
    assert os.stat(root / "plain.txt").st_nlink == 1


def test_a_replacing_write_breaks_a_link_made_after_it_started(linked):
    """A replacing write renames a new file over the name, so it never writes through the old inode (documented guarantee)."""
    root = linked["root"]
    inode = os.stat(root / "plain.txt").st_ino
    assert call("host.fs.write", {"path": "plain.txt", "content": "new\n"}, root).status == "ok"
    assert os.stat(root / "plain.txt").st_ino != inode  # a new file took the name


def test_hard_link_write_through_a_real_kernel_is_refused(data_dir, tmp_path):
    """A world's host.fs.write (append) to a name hard-linked outside its root settles hard_link; the kernel serves on."""
    granted, outside = tmp_path / "granted", tmp_path / "outside"
    granted.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    os.link(outside / "secret.txt", granted / "link.txt")
    doc = hostile_manifest({"sys/host.fs.write@1": declared("host.fs", writes=True)},
                           {"files": {"cap": "host.fs", "params": {"root": str(granted)}}})
    kernel = KernelProcess(data_dir, extra_args=["--grant-host", str(granted)]).start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world, _ = await (await admin.worlds("u")).create(doc, world_id="linker")
                for append in (True, False):
                    await world.send(SCRIPT, {"effects": [{"effect": "sys/host.fs.write@1", "params": {
                        "path": "link.txt", "content": "pwned\n", "append": append}}]})

                async def both():
                    state = await world.state(WORKFLOW)
                    return state["receipts"] if len(state["receipts"]) == 2 else None

                return await wait_until(both), await admin.status()

        receipts, status = run(main())
    finally:
        kernel.kill()
    assert [(r[1], r[2]["error"]) for r in receipts] == [("error", "hard_link"), ("error", "hard_link")]
    assert (outside / "secret.txt").read_text() == SECRET and os.stat(outside / "secret.txt").st_nlink == 2
    assert status["connections"] >= 1
