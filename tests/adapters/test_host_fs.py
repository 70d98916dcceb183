"""host.fs: every operation on real files under a tmp root, and every way out of the root refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aos.adapters import host_fs
from aos.adapters.host_fs import HostFsAdapter

FS = HostFsAdapter()
SECRET = b"outside-secret"


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    """root/ with a file, a dir, an inside symlink, and symlinks to a file and a dir outside the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("beta")
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "inner_link").symlink_to(root / "a.txt")
    (root / "dangling").symlink_to(outside / "not-yet")
    return {"root": root, "outside": outside, "grant": {"root": str(root), "read_only": False}}


def json_friendly(v: Any) -> bool:
    if isinstance(v, dict):
        return all(isinstance(k, str) and json_friendly(x) for k, x in v.items())
    if isinstance(v, list):
        return all(json_friendly(x) for x in v)
    return v is None or isinstance(v, (str, int, bool, bytes, float))


def test_write_then_read_text(tree, run_effect):
    """A written text file reads back identically, and the receipts say whether it was created."""
    g = tree["grant"]
    r = run_effect(FS, "host.fs.write", {"path": "new.txt", "content": "héllo\n"}, g)
    assert r.status == "ok" and r.payload == {"path": "new.txt", "size": 7, "created": True, "appended": False}
    r = run_effect(FS, "host.fs.write", {"path": "new.txt", "content": "héllo again\n"}, g)
    assert r.payload["created"] is False
    r = run_effect(FS, "host.fs.read", {"path": "new.txt"}, g)
    assert r.status == "ok"
    assert r.payload == {"path": "new.txt", "content": "héllo again\n", "encoding": "utf-8", "size": 13, "offset": 0, "truncated": False}
    assert json_friendly(dict(r.payload))
    assert (tree["root"] / "new.txt").read_text() == "héllo again\n"
    assert [p.name for p in tree["root"].iterdir() if p.name.startswith(".aos-tmp")] == []


def test_write_bytes_append_and_read_bytes_with_offset(tree, run_effect):
    """Bytes content is written raw, append adds to the end, and a bytes read from an offset returns exactly those bytes."""
    g = tree["grant"]
    assert run_effect(FS, "host.fs.write", {"path": "bin", "content": b"\x00\xff"}, g).status == "ok"
    r = run_effect(FS, "host.fs.write", {"path": "bin", "content": b"\x01\x02", "append": True}, g)
    assert r.payload["appended"] is True
    r = run_effect(FS, "host.fs.read", {"path": "bin", "encoding": "bytes", "offset": 1}, g)
    assert r.payload["content"] == b"\xff\x01\x02" and r.payload["size"] == 4


def test_write_keeps_mode_and_refuses_existing_without_overwrite(tree, run_effect):
    """Overwriting keeps the file's permission bits; overwrite: false on an existing file is 'exists' and leaves it alone."""
    g = tree["grant"]
    os.chmod(tree["root"] / "a.txt", 0o640)
    assert run_effect(FS, "host.fs.write", {"path": "a.txt", "content": "x"}, g).status == "ok"
    assert (tree["root"] / "a.txt").stat().st_mode & 0o777 == 0o640
    r = run_effect(FS, "host.fs.write", {"path": "a.txt", "content": "y", "overwrite": False}, g)
    assert (r.status, r.error) == ("error", "exists")
    assert (tree["root"] / "a.txt").read_text() == "x"


def test_write_parents(tree, run_effect):
    """A write into missing directories fails not_found, and succeeds with parents: true."""
    g = tree["grant"]
    r = run_effect(FS, "host.fs.write", {"path": "x/y/z.txt", "content": "z"}, g)
    assert r.error == "not_found"
    r = run_effect(FS, "host.fs.write", {"path": "x/y/z.txt", "content": "z", "parents": True}, g)
    assert r.status == "ok" and (tree["root"] / "x" / "y" / "z.txt").read_text() == "z"


def test_read_cap_reports_truncation(tree, run_effect):
    """A read longer than max_bytes returns max_bytes, the full size, and truncated: true."""
    g = tree["grant"]
    (tree["root"] / "big").write_bytes(b"x" * 100)
    r = run_effect(FS, "host.fs.read", {"path": "big", "max_bytes": 10}, g)
    assert r.payload["content"] == "x" * 10 and r.payload["size"] == 100 and r.payload["truncated"] is True
    r = run_effect(FS, "host.fs.read", {"path": "big", "max_bytes": 100}, g)
    assert r.payload["truncated"] is False and len(r.payload["content"]) == 100


def test_read_cap_from_grant_and_split_character(tree, run_effect):
    """The grant's max_read_bytes bounds max_bytes, and a UTF-8 character cut by the cap is dropped, not mangled."""
    g = {**tree["grant"], "max_read_bytes": 4}
    (tree["root"] / "u.txt").write_text("abcé")  # é is 2 bytes: bytes 3..4
    r = run_effect(FS, "host.fs.read", {"path": "u.txt", "max_bytes": 1000}, g)
    assert r.payload["content"] == "abc" and r.payload["truncated"] is True


def test_read_invalid_utf8_is_not_text(tree, run_effect):
    """Reading a binary file as text fails not_text instead of returning replacement characters."""
    (tree["root"] / "bin").write_bytes(b"\xff\xfe")
    r = run_effect(FS, "host.fs.read", {"path": "bin"}, tree["grant"])
    assert r.error == "not_text"


def test_list(tree, run_effect):
    """list returns the directory's entries sorted by name with their types, sizes for files, and a cap."""
    g = tree["grant"]
    r = run_effect(FS, "host.fs.list", {"path": "/"}, g)
    assert r.status == "ok" and r.payload["path"] == "." and r.payload["truncated"] is False
    assert r.payload["entries"] == [
        {"name": "a.txt", "type": "file", "size": 6},
        {"name": "dangling", "type": "symlink", "size": None},
        {"name": "inner_link", "type": "symlink", "size": None},
        {"name": "link_dir", "type": "symlink", "size": None},
        {"name": "link_file", "type": "symlink", "size": None},
        {"name": "sub", "type": "dir", "size": None},
    ]
    r = run_effect(FS, "host.fs.list", {"path": "sub"}, g)
    assert [e["name"] for e in r.payload["entries"]] == ["b.txt"]
    r = run_effect(FS, "host.fs.list", {"path": ".", "max_entries": 2}, g)
    assert len(r.payload["entries"]) == 2 and r.payload["truncated"] is True


def test_stat(tree, run_effect):
    """stat reports type, size, mode and mtime for files, directories and (without following) symlinks."""
    g = tree["grant"]
    r = run_effect(FS, "host.fs.stat", {"path": "a.txt"}, g)
    st = (tree["root"] / "a.txt").stat()
    assert r.payload == {"path": "a.txt", "type": "file", "size": 6, "mode": st.st_mode & 0o7777, "mtime_ns": st.st_mtime_ns}
    assert run_effect(FS, "host.fs.stat", {"path": "sub"}, g).payload["type"] == "dir"
    assert run_effect(FS, "host.fs.stat", {"path": "inner_link"}, g).payload["type"] == "file"
    r = run_effect(FS, "host.fs.stat", {"path": "inner_link", "follow_symlinks": False}, g)
    assert r.payload["type"] == "symlink"


def test_delete(tree, run_effect):
    """delete removes files and empty dirs, refuses a non-empty dir unless recursive, and never deletes the root."""
    g, root = tree["grant"], tree["root"]
    assert run_effect(FS, "host.fs.delete", {"path": "a.txt"}, g).payload == {"path": "a.txt", "type": "file"}
    assert not (root / "a.txt").exists()
    r = run_effect(FS, "host.fs.delete", {"path": "sub"}, g)
    assert r.error == "not_empty" and (root / "sub" / "b.txt").exists()
    assert run_effect(FS, "host.fs.delete", {"path": "sub", "recursive": True}, g).status == "ok"
    assert not (root / "sub").exists()
    (root / "empty").mkdir()
    assert run_effect(FS, "host.fs.delete", {"path": "empty"}, g).payload["type"] == "dir"
    assert run_effect(FS, "host.fs.delete", {"path": "/"}, g).error == "invalid_params"
    assert root.is_dir()


def test_move(tree, run_effect):
    """move renames, refuses to replace an existing destination unless overwrite is set, and can create parents."""
    g, root = tree["grant"], tree["root"]
    r = run_effect(FS, "host.fs.move", {"src": "a.txt", "dst": "c.txt"}, g)
    assert r.payload == {"src": "a.txt", "dst": "c.txt", "type": "file"}
    assert (root / "c.txt").read_text() == "alpha\n" and not (root / "a.txt").exists()
    r = run_effect(FS, "host.fs.move", {"src": "c.txt", "dst": "sub/b.txt"}, g)
    assert r.error == "exists" and (root / "sub" / "b.txt").read_text() == "beta"
    assert run_effect(FS, "host.fs.move", {"src": "c.txt", "dst": "sub/b.txt", "overwrite": True}, g).status == "ok"
    assert (root / "sub" / "b.txt").read_text() == "alpha\n"
    assert run_effect(FS, "host.fs.move", {"src": "sub", "dst": "d/e/sub", "parents": True}, g).payload["type"] == "dir"
    assert (root / "d" / "e" / "sub" / "b.txt").exists()
    assert run_effect(FS, "host.fs.move", {"path": "sub/../x", "dst": "y"}, g).error == "path_escape"
    assert run_effect(FS, "host.fs.move", {"path": "d", "dst": "f"}, g).payload["src"] == "d"  # path = src


def test_mkdir(tree, run_effect):
    """mkdir creates a directory, with parents on request, and reports 'exists' unless exist_ok."""
    g, root = tree["grant"], tree["root"]
    assert run_effect(FS, "host.fs.mkdir", {"path": "n"}, g).payload == {"path": "n", "created": True}
    assert run_effect(FS, "host.fs.mkdir", {"path": "n"}, g).error == "exists"
    assert run_effect(FS, "host.fs.mkdir", {"path": "n", "exist_ok": True}, g).payload["created"] is False
    assert run_effect(FS, "host.fs.mkdir", {"path": "p/q"}, g).error == "not_found"
    assert run_effect(FS, "host.fs.mkdir", {"path": "p/q", "parents": True}, g).status == "ok"
    assert (root / "p" / "q").is_dir()
    assert run_effect(FS, "host.fs.mkdir", {"path": "a.txt", "exist_ok": True}, g).error == "exists"


@pytest.mark.parametrize(
    "kind,params",
    [
        ("host.fs.read", {"path": "nope"}),
        ("host.fs.stat", {"path": "nope"}),
        ("host.fs.list", {"path": "nope"}),
        ("host.fs.delete", {"path": "nope"}),
        ("host.fs.move", {"src": "nope", "dst": "x"}),
        ("host.fs.read", {"path": "nope/deeper"}),
    ],
)
def test_not_found(tree, run_effect, kind, params):
    """Every operation on a missing path fails not_found with a one-line message."""
    r = run_effect(FS, kind, params, tree["grant"])
    assert (r.status, r.error) == ("error", "not_found")
    assert r.message and "\n" not in r.message


def test_type_errors(tree, run_effect):
    """Reading a directory is is_a_directory; listing a file or writing below a file is not_a_directory."""
    g = tree["grant"]
    assert run_effect(FS, "host.fs.read", {"path": "sub"}, g).error == "is_a_directory"
    assert run_effect(FS, "host.fs.read", {"path": "/"}, g).error == "is_a_directory"
    assert run_effect(FS, "host.fs.write", {"path": "sub", "content": "x"}, g).error == "is_a_directory"
    assert run_effect(FS, "host.fs.list", {"path": "a.txt"}, g).error == "not_a_directory"
    assert run_effect(FS, "host.fs.write", {"path": "a.txt/x", "content": "x"}, g).error == "not_a_directory"


def test_write_size_cap(tree, run_effect):
    """Content larger than the grant's max_write_bytes is refused too_large and nothing is written."""
    g = {**tree["grant"], "max_write_bytes": 8}
    r = run_effect(FS, "host.fs.write", {"path": "big", "content": "x" * 9}, g)
    assert r.error == "too_large" and not (tree["root"] / "big").exists()


def test_leading_slash_means_root(tree, run_effect):
    """An absolute path names a path under the root, so a host path outside the root is never reached."""
    g = tree["grant"]
    assert run_effect(FS, "host.fs.read", {"path": "/a.txt"}, g).payload["content"] == "alpha\n"
    r = run_effect(FS, "host.fs.read", {"path": str(tree["outside"] / "secret.txt")}, g)
    assert r.error == "not_found" and "content" not in r.payload
    r = run_effect(FS, "host.fs.write", {"path": str(tree["outside"] / "secret.txt"), "content": "pwned", "parents": True}, g)
    assert r.status == "ok"
    assert (tree["outside"] / "secret.txt").read_bytes() == SECRET
    assert (tree["root"] / str(tree["outside"]).lstrip("/") / "secret.txt").read_text() == "pwned"


ESCAPES = [
    ("host.fs.read", {"path": "../outside/secret.txt"}),
    ("host.fs.read", {"path": "sub/../../outside/secret.txt"}),
    ("host.fs.write", {"path": "../outside/secret.txt", "content": "pwned"}),
    ("host.fs.list", {"path": ".."}),
    ("host.fs.stat", {"path": "../outside"}),
    ("host.fs.delete", {"path": "../outside/secret.txt"}),
    ("host.fs.move", {"src": "../outside/secret.txt", "dst": "stolen"}),
    ("host.fs.move", {"src": "a.txt", "dst": "../outside/planted"}),
    ("host.fs.mkdir", {"path": "../outside/newdir"}),
]


@pytest.mark.parametrize("kind,params", ESCAPES)
def test_dotdot_refused(tree, run_effect, kind, params):
    """Any path with a '..' component is refused path_escape and nothing outside the root changes."""
    r = run_effect(FS, kind, params, tree["grant"])
    assert (r.status, r.error) == ("error", "path_escape")
    assert "content" not in r.payload
    assert sorted(p.name for p in tree["outside"].iterdir()) == ["secret.txt"]
    assert (tree["outside"] / "secret.txt").read_bytes() == SECRET
    assert (tree["root"] / "a.txt").exists()


SYMLINK_ESCAPES = [
    ("host.fs.read", {"path": "link_file"}),
    ("host.fs.read", {"path": "link_dir/secret.txt"}),
    ("host.fs.write", {"path": "link_file", "content": "pwned"}),
    ("host.fs.write", {"path": "link_dir/planted", "content": "pwned"}),
    ("host.fs.write", {"path": "dangling", "content": "pwned"}),
    ("host.fs.write", {"path": "link_dir/x/planted", "content": "pwned", "parents": True}),
    ("host.fs.list", {"path": "link_dir"}),
    ("host.fs.list", {"path": "link_dir/"}),
    ("host.fs.stat", {"path": "link_file"}),
    ("host.fs.stat", {"path": "link_dir/secret.txt"}),
    ("host.fs.delete", {"path": "link_dir/secret.txt"}),
    ("host.fs.move", {"src": "link_dir/secret.txt", "dst": "stolen"}),
    ("host.fs.move", {"src": "a.txt", "dst": "link_dir/planted"}),
    ("host.fs.mkdir", {"path": "link_dir/newdir"}),
]


@pytest.mark.parametrize("kind,params", SYMLINK_ESCAPES)
def test_symlink_escape_refused(tree, run_effect, kind, params):
    """A symlink in the root pointing outside (to a file or a dir) is never followed: path_escape, outside untouched."""
    r = run_effect(FS, kind, params, tree["grant"])
    assert (r.status, r.error) == ("error", "path_escape")
    assert "content" not in r.payload and "entries" not in r.payload
    assert sorted(p.name for p in tree["outside"].iterdir()) == ["secret.txt"]
    assert (tree["outside"] / "secret.txt").read_bytes() == SECRET
    assert (tree["root"] / "a.txt").exists() and not (tree["root"] / "stolen").exists()


def test_symlink_itself_can_be_deleted_or_moved(tree, run_effect):
    """delete and move act on a symlink itself, never on its outside target."""
    g, root = tree["grant"], tree["root"]
    assert run_effect(FS, "host.fs.delete", {"path": "link_file"}, g).payload == {"path": "link_file", "type": "symlink"}
    assert not os.path.lexists(root / "link_file")
    assert run_effect(FS, "host.fs.move", {"src": "link_dir", "dst": "moved"}, g).payload["type"] == "symlink"
    assert (root / "moved").is_symlink()
    assert (tree["outside"] / "secret.txt").read_bytes() == SECRET


def test_symlink_inside_root_is_followed(tree, run_effect):
    """A symlink whose target stays inside the root works for read and write."""
    g = tree["grant"]
    assert run_effect(FS, "host.fs.read", {"path": "inner_link"}, g).payload["content"] == "alpha\n"
    assert run_effect(FS, "host.fs.write", {"path": "inner_link", "content": "new"}, g).status == "ok"
    assert (tree["root"] / "a.txt").read_text() == "new" and (tree["root"] / "inner_link").is_symlink()


@pytest.mark.parametrize(
    "kind,params",
    [
        ("host.fs.read", {"path": "link_file"}),
        ("host.fs.read", {"path": "link_dir/secret.txt"}),
        ("host.fs.write", {"path": "link_file", "content": "pwned"}),
        ("host.fs.write", {"path": "link_dir/planted", "content": "pwned"}),
        ("host.fs.list", {"path": "link_dir"}),
        ("host.fs.delete", {"path": "link_dir/secret.txt"}),
    ],
)
def test_symlink_swapped_after_check_is_not_followed(tree, run_effect, monkeypatch, kind, params):
    """If the containment check is fooled (a directory swapped for a symlink after realpath), the O_NOFOLLOW walk still refuses."""
    # simulate the race: realpath sees the tree as it was before the swap, i.e. no symlinks at all
    monkeypatch.setattr(host_fs.os.path, "realpath", os.path.abspath)
    r = run_effect(FS, kind, params, tree["grant"])
    assert (r.status, r.error) == ("error", "path_escape")
    assert sorted(p.name for p in tree["outside"].iterdir()) == ["secret.txt"]
    assert (tree["outside"] / "secret.txt").read_bytes() == SECRET


@pytest.mark.parametrize(
    "kind,params",
    [
        ("host.fs.write", {"path": "a.txt", "content": "x"}),
        ("host.fs.delete", {"path": "a.txt"}),
        ("host.fs.move", {"src": "a.txt", "dst": "b.txt"}),
        ("host.fs.mkdir", {"path": "d"}),
    ],
)
def test_read_only_grant_refuses_changes(tree, run_effect, kind, params):
    """Under a read-only grant every change is refused read_only and the tree is unchanged, while reads still work."""
    g = {**tree["grant"], "read_only": True}
    before = sorted(p.name for p in tree["root"].iterdir())
    r = run_effect(FS, kind, params, g)
    assert (r.status, r.error) == ("error", "read_only")
    assert sorted(p.name for p in tree["root"].iterdir()) == before
    assert (tree["root"] / "a.txt").read_text() == "alpha\n"
    assert run_effect(FS, "host.fs.read", {"path": "a.txt"}, g).status == "ok"


def test_special_files_and_loops(tree, run_effect):
    """A FIFO is refused not_a_file without blocking, and a symlink loop is refused instead of hanging or raising."""
    root, g = tree["root"], tree["grant"]
    os.mkfifo(root / "fifo")
    assert run_effect(FS, "host.fs.read", {"path": "fifo"}, g).error == "not_a_file"
    (root / "loop").symlink_to(root / "loop")
    assert run_effect(FS, "host.fs.read", {"path": "loop"}, g).status == "error"
    assert run_effect(FS, "host.fs.write", {"path": "loop", "content": "x"}, g).status == "error"


def test_aos_effect_names_and_bad_params(tree, run_effect):
    """The adapter accepts sys/...@1 effect names, and malformed params are invalid_params rather than exceptions."""
    g = tree["grant"]
    assert run_effect(FS, "sys/host.fs.read@1", {"path": "a.txt"}, g).payload["content"] == "alpha\n"
    assert run_effect(FS, "host.fs.read", {"path": 3}, g).error == "invalid_params"
    assert run_effect(FS, "host.fs.read", {"path": "a.txt", "encoding": "latin-1"}, g).error == "invalid_params"
    assert run_effect(FS, "host.fs.read", {"path": "a\0b"}, g).error == "invalid_params"
    assert run_effect(FS, "host.fs.chmod", {"path": "a.txt"}, g).error == "unsupported"
    assert run_effect(FS, "host.fs.read", {"path": "a.txt"}, {"root": "relative"}).error == "bad_grant"
