"""HostFsToolsAdapter on real temp directories: edit, apply_patch (atomic), grep, glob, confinement, read-only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from aos.adapters.base import EffectCall, Receipt
from aos.adapters.host_fs_tools import HostFsToolsAdapter

TOOLS = HostFsToolsAdapter()
SECRET = "outside-secret\n"


def run(kind: str, params: dict[str, Any], grant: dict[str, Any]) -> Receipt:
    async def sink(frame: Any) -> None:
        raise AssertionError("the file tools send no frames")

    return asyncio.run(TOOLS.run(EffectCall(kind, params, grant, idempotency_key="k"), sink))


def P(*body: str) -> str:
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"]) + "\n"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file (not symlink) below root with its bytes: the whole visible state of the tree."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            if not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    """root/ with files, a subdir, a .git dir, a binary file, an inside symlink and symlinks leading outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "a.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.py").write_text("def f():\n    return 1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("alpha in git\n")
    (root / "blob.bin").write_bytes(b"alpha\x00\xff\xfe")
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "inner_link").symlink_to(root / "a.txt")
    return {"root": root, "outside": outside, "grant": {"root": str(root), "read_only": False}}


# --- edit --------------------------------------------------------------------------------------
def test_edit_exact_and_fuzzy(tree):
    """edit replaces text in place and reports replacements and strategy; no temp files are left."""
    g = tree["grant"]
    r = run("host.fs.edit", {"path": "a.txt", "old_string": "beta", "new_string": "BETA"}, g)
    assert (r.status, dict(r.payload)) == ("ok", {"path": "a.txt", "replacements": 1, "strategy": "exact"})
    r = run("sys/host.fs.edit@1", {"path": "/sub/b.py", "old_string": "def f():\n  return 1", "new_string": "x = 2"}, g)
    assert dict(r.payload) == {"path": "sub/b.py", "replacements": 1, "strategy": "fuzzy"}
    assert (tree["root"] / "a.txt").read_text() == "alpha\nBETA\ngamma\n"
    assert (tree["root"] / "sub" / "b.py").read_text() == "x = 2\n"
    assert not [p for p in tree["root"].rglob(".aos-*")]


def test_edit_keeps_mode_and_follows_inside_symlink(tree):
    """Editing keeps permission bits, and an edit through a symlink inside the root changes its target."""
    os.chmod(tree["root"] / "a.txt", 0o640)
    r = run("host.fs.edit", {"path": "inner_link", "old_string": "gamma", "new_string": "G"}, tree["grant"])
    assert r.status == "ok"
    assert (tree["root"] / "a.txt").read_text() == "alpha\nbeta\nG\n"
    assert (tree["root"] / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tree["root"] / "inner_link").is_symlink()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"path": "a.txt", "old_string": "zeta", "new_string": "x"}, "no_match"),
        ({"path": "a.txt", "old_string": "a", "new_string": "x"}, "ambiguous"),
        ({"path": "nope.txt", "old_string": "a", "new_string": "x"}, "not_found"),
        ({"path": "sub", "old_string": "a", "new_string": "x"}, "is_a_directory"),
        ({"path": "blob.bin", "old_string": "a", "new_string": "x"}, "not_text"),
        ({"path": "a.txt", "old_string": "", "new_string": "x"}, "invalid_params"),
        ({"path": "a.txt", "new_string": "x"}, "invalid_params"),
        ({"path": "../outside/secret.txt", "old_string": "o", "new_string": "x"}, "path_escape"),
        ({"path": "link_file", "old_string": "outside", "new_string": "x"}, "path_escape"),
        ({"path": "link_dir/secret.txt", "old_string": "outside", "new_string": "x"}, "path_escape"),
    ],
)
def test_edit_errors(tree, params, error):
    """Each bad edit is an error receipt with its code, and nothing inside or outside the root changes."""
    before = snapshot(tree["root"])
    r = run("host.fs.edit", params, tree["grant"])
    assert (r.status, r.error) == ("error", error), r.message
    assert snapshot(tree["root"]) == before
    assert (tree["outside"] / "secret.txt").read_text() == SECRET


def test_edit_ambiguous_message_counts(tree):
    """The ambiguous receipt says how many places matched."""
    r = run("host.fs.edit", {"path": "a.txt", "old_string": "a\n", "new_string": "x\n"}, tree["grant"])
    assert r.error == "ambiguous" and "3 matches" in r.message


def test_edit_max_write_bytes(tree):
    """An edit that would grow the file past the grant's max_write_bytes is too_large and changes nothing."""
    g = {**tree["grant"], "max_write_bytes": 20}
    r = run("host.fs.edit", {"path": "a.txt", "old_string": "beta", "new_string": "b" * 30}, g)
    assert r.error == "too_large" and (tree["root"] / "a.txt").read_text() == "alpha\nbeta\ngamma\n"


# --- apply_patch -------------------------------------------------------------------------------
def test_apply_patch_all_operations(tree):
    """One patch adds (creating directories), updates, deletes and moves, and the receipt lists each."""
    root = tree["root"]
    (root / "old.txt").write_text("bye\n")
    os.chmod(root / "sub" / "b.py", 0o750)
    text = P(
        "*** Add File: new/deep/n.txt",
        "+hello",
        "*** Update File: a.txt",
        "@@",
        " alpha",
        "-beta",
        "+BETA",
        "*** Delete File: old.txt",
        "*** Update File: sub/b.py",
        "*** Move to: lib/b.py",
        "@@ def f():",
        "-    return 1",
        "+    return 2",
    )
    r = run("host.fs.apply_patch", {"patch": text}, tree["grant"])
    assert r.status == "ok", r.message
    assert dict(r.payload) == {
        "added": ["new/deep/n.txt"],
        "updated": ["a.txt", "lib/b.py"],
        "deleted": ["old.txt"],
        "moved": [["sub/b.py", "lib/b.py"]],
    }
    assert (root / "new" / "deep" / "n.txt").read_text() == "hello\n"
    assert (root / "a.txt").read_text() == "alpha\nBETA\ngamma\n"
    assert not (root / "old.txt").exists() and not (root / "sub" / "b.py").exists()
    assert (root / "lib" / "b.py").read_text() == "def f():\n    return 2\n"
    assert (root / "lib" / "b.py").stat().st_mode & 0o777 == 0o750
    assert not [p for p in root.rglob(".aos-*")]


def test_apply_patch_relative_to_path_param(tree):
    """With path: 'sub', patch paths are relative to sub/, and the receipt shows root-relative paths."""
    r = run("host.fs.apply_patch", {"path": "sub", "patch": P("*** Add File: c.txt", "+c")}, tree["grant"])
    assert r.payload["added"] == ["sub/c.txt"] and (tree["root"] / "sub" / "c.txt").read_text() == "c\n"


@pytest.mark.parametrize(
    ("second", "error"),
    [
        (["*** Update File: sub/b.py", "@@", "-no such line", "+x"], "patch_conflict"),
        (["*** Update File: missing.txt", "@@", "-x"], "patch_conflict"),
        (["*** Add File: sub/b.py", "+x"], "patch_conflict"),
        (["*** Delete File: missing.txt"], "patch_conflict"),
        (["*** Add File: a.txt/inner", "+x"], "not_a_directory"),
        (["*** Add File: ../escape.txt", "+x"], "path_escape"),
        (["*** Add File: /etc/evil", "+x"], "path_escape"),
        (["*** Update File: link_dir/secret.txt", "@@", "-outside-secret", "+pwned"], "path_escape"),
        (["*** Delete File: sub"], "is_a_directory"),
        (["*** Update File: blob.bin", "@@", "-alpha", "+x"], "not_text"),
        (["*** Update File: sub/b.py", "*** Move to: ../../moved.py"], "path_escape"),
    ],
)
def test_apply_patch_second_file_fails_first_unchanged(tree, second, error):
    """When the patch's second operation fails, the first file is untouched and nothing new appears on disk."""
    before = snapshot(tree["root"])
    text = P("*** Update File: a.txt", "@@", "-alpha", "+ALPHA", *second)
    r = run("host.fs.apply_patch", {"patch": text}, tree["grant"])
    assert (r.status, r.error) == ("error", error), r.message
    assert snapshot(tree["root"]) == before
    assert (tree["outside"] / "secret.txt").read_text() == SECRET
    assert not (tree["outside"].parent / "escape.txt").exists()


def test_apply_patch_conflict_names_file_and_hunk(tree):
    """A conflict's message names the file and the hunk that did not fit."""
    text = P("*** Update File: a.txt", "@@", "-alpha", "+A", "@@", "-omega", "+O")
    r = run("host.fs.apply_patch", {"patch": text}, tree["grant"])
    assert r.error == "patch_conflict" and "a.txt: hunk 2" in r.message and "omega" in r.message


def test_apply_patch_invalid_text(tree):
    """Text that is not a v4a patch is patch_invalid and says which line."""
    r = run("host.fs.apply_patch", {"patch": "--- a.txt\n+++ a.txt\n"}, tree["grant"])
    assert r.error == "patch_invalid" and "*** Begin Patch" in r.message


def test_apply_patch_rolls_back_when_a_rename_fails(tree, monkeypatch):
    """If the commit fails midway (the second rename), files already replaced are restored and new files removed."""
    root = tree["root"]
    before = snapshot(root)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_replace(*args, **kwargs)

    monkeypatch.setattr(os, "replace", flaky_replace)
    text = P(
        "*** Update File: a.txt",
        "@@",
        "-alpha",
        "+ALPHA",
        "*** Add File: fresh/new.txt",
        "+n",
        "*** Update File: sub/b.py",
        "@@",
        "-    return 1",
        "+    return 3",
    )
    r = run("host.fs.apply_patch", {"patch": text}, tree["grant"])
    assert (r.status, r.error) == ("error", "io_error")
    assert calls["n"] >= 3
    assert snapshot(root) == before
    assert not (root / "fresh").exists()
    assert not [p for p in root.rglob(".aos-*")]


def test_apply_patch_through_inside_dir_symlink_and_root_path(tree):
    """A path through a symlinked directory inside the root edits the real file; a path naming the root is patch_invalid."""
    (tree["root"] / "lnsub").symlink_to(tree["root"] / "sub")
    text = P("*** Update File: lnsub/b.py", "@@", "-    return 1", "+    return 5")
    r = run("host.fs.apply_patch", {"patch": text}, tree["grant"])
    assert r.status == "ok" and r.payload["updated"] == ["lnsub/b.py"]
    assert (tree["root"] / "sub" / "b.py").read_text() == "def f():\n    return 5\n"
    assert (tree["root"] / "lnsub").is_symlink()
    r = run("host.fs.apply_patch", {"patch": P("*** Delete File: ./")}, tree["grant"])
    assert (r.status, r.error) == ("error", "patch_invalid")


def test_apply_patch_delete_symlink_removes_link_only(tree):
    """Deleting a symlink (even one pointing outside) removes the link, never its target."""
    r = run("host.fs.apply_patch", {"patch": P("*** Delete File: link_file")}, tree["grant"])
    assert r.status == "ok" and r.payload["deleted"] == ["link_file"]
    assert not (tree["root"] / "link_file").is_symlink()
    assert (tree["outside"] / "secret.txt").read_text() == SECRET


# --- grep and glob -----------------------------------------------------------------------------
def test_grep_skips_git_binary_and_outside_links(tree):
    """grep finds text matches with path:line, skipping .git, binary files and symlinks out of the root."""
    r = run("host.fs.grep", {"pattern": "alpha|secret"}, tree["grant"])
    assert r.status == "ok"
    assert r.payload == {"matches": [{"path": "a.txt", "line": 1, "text": "alpha"}], "truncated": False}


def test_grep_options(tree):
    """path narrows the search, glob filters names, case_insensitive and max_results work."""
    g = tree["grant"]
    (tree["root"] / "sub" / "c.txt").write_text("RETURN\n")
    r = run("host.fs.grep", {"pattern": "return", "path": "sub", "case_insensitive": True}, g)
    assert [(m["path"], m["line"]) for m in r.payload["matches"]] == [("sub/b.py", 2), ("sub/c.txt", 1)]
    r = run("host.fs.grep", {"pattern": "return", "glob": "*.txt", "case_insensitive": True}, g)
    assert [m["path"] for m in r.payload["matches"]] == ["sub/c.txt"]
    r = run("host.fs.grep", {"pattern": "a", "max_results": 2}, g)
    assert len(r.payload["matches"]) == 2 and r.payload["truncated"] is True
    r = run("host.fs.grep", {"pattern": "def", "path": "sub/b.py"}, g)
    assert r.payload["matches"] == [{"path": "sub/b.py", "line": 1, "text": "def f():"}]


def test_grep_reads_non_utf8_text_lossily(tree):
    """A text file that is not valid UTF-8 (but has no NUL) is still searched, with bad bytes replaced."""
    (tree["root"] / "latin1.txt").write_bytes(b"caf\xe9 needle\n")
    r = run("host.fs.grep", {"pattern": "needle"}, tree["grant"])
    assert r.payload["matches"] == [{"path": "latin1.txt", "line": 1, "text": "caf\ufffd needle"}]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"pattern": "("}, "invalid_params"),
        ({"pattern": "x", "path": "../outside"}, "path_escape"),
        ({"pattern": "x", "path": "link_dir"}, "path_escape"),
        ({"pattern": "x", "path": "nope"}, "not_found"),
        ({"pattern": "x", "max_results": 0}, "invalid_params"),
    ],
)
def test_grep_errors(tree, params, error):
    """Bad patterns, escaping or missing paths and bad limits are error receipts."""
    r = run("host.fs.grep", params, tree["grant"])
    assert (r.status, r.error) == ("error", error)


def test_glob(tree):
    """glob lists regular files matching the pattern, sorted, relative to the root, without .git or symlinks."""
    g = tree["grant"]
    r = run("host.fs.glob", {"pattern": "**"}, g)
    assert r.payload == {"paths": ["a.txt", "blob.bin", "sub/b.py"], "truncated": False}
    r = run("host.fs.glob", {"pattern": "*.py", "path": "sub"}, g)
    assert r.payload["paths"] == ["sub/b.py"]
    r = run("host.fs.glob", {"pattern": "**", "max_results": 1}, g)
    assert r.payload == {"paths": ["a.txt"], "truncated": True}
    assert run("host.fs.glob", {"pattern": "*", "path": "link_dir"}, g).error == "path_escape"
    assert run("host.fs.glob", {"pattern": "*", "path": "a.txt"}, g).error == "not_a_directory"


# --- grants ------------------------------------------------------------------------------------
def test_read_only_grant_refuses_changes_but_allows_search(tree):
    """Under a read-only grant edit and apply_patch are refused read_only and change nothing; grep and glob work."""
    g = {"root": str(tree["root"]), "read_only": True}
    before = snapshot(tree["root"])
    r = run("host.fs.edit", {"path": "a.txt", "old_string": "beta", "new_string": "x"}, g)
    assert (r.status, r.error) == ("error", "read_only")
    r = run("host.fs.apply_patch", {"patch": P("*** Add File: n.txt", "+x")}, g)
    assert (r.status, r.error) == ("error", "read_only")
    assert snapshot(tree["root"]) == before
    assert run("host.fs.grep", {"pattern": "beta"}, g).status == "ok"
    assert run("host.fs.glob", {"pattern": "*.txt"}, g).payload["paths"] == ["a.txt"]


def test_bad_grant_and_unknown_kind(tree):
    """A relative root is bad_grant, a non-bool read_only is bad_grant, and an unknown kind is unsupported."""
    assert run("host.fs.glob", {"pattern": "*"}, {"root": "rel"}).error == "bad_grant"
    assert run("host.fs.glob", {"pattern": "*"}, {"root": str(tree["root"]), "read_only": "no"}).error == "bad_grant"
    assert run("host.fs.read", {"path": "a.txt"}, tree["grant"]).error == "unsupported"
