"""Workspaces: versioned trees of files in CAS (module sources live here).

How it works, git-like without an index. A file is a blob in CAS. A *tree*
is one canonical-CBOR object ``{"$kind": "tree", "files": {path: hash}}``
(paths are flat, ``/``-separated), so equal trees have equal hashes. A
*commit* is ``{"$kind": "commit", "tree", "parent", "message", "time_ns"}``.
A workspace's *ref* is its head commit (or none yet) and its working tree;
writing a file makes a new working tree, committing makes a commit of the
working tree on top of the head.

Everything here is pure: the operations return the new objects (as bytes to
store) and take a ``get`` function to read old ones, so the same code runs
in the kernel (CAS, refs journaled per workspace) and in a test or a script
(``Workspace(MemoryStore())``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aos.kernel.world import cbor
from aos.kernel.world.errors import CborError, WorldError

MAX_PATH_CHARS = 256
MAX_FILES = 1000  # per tree, unless a grant says fewer
MAX_FILE_BYTES = 1 << 20  # per file, unless a grant says fewer
MAX_MESSAGE_CHARS = 2000
DIFF_CONTEXT = 3
MAX_DIFF_CHARS = 64 * 1024  # unified diff text per file; longer diffs are cut


class WorkspaceError(WorldError):
    """A bad path, a missing file or commit, or a workspace over its limits."""

    code = "Workspace"


Get = Callable[[str], bytes]


def check_path(path: Any) -> str:
    """A workspace path: relative, ``/``-separated, no ``.``/``..`` parts, printable.
    Raises ``WorkspaceError``."""
    if not isinstance(path, str) or not path:
        raise WorkspaceError("a path is non-empty text")
    if len(path) > MAX_PATH_CHARS:
        raise WorkspaceError(f"path is {len(path)} characters; the limit is {MAX_PATH_CHARS}")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise WorkspaceError(f"bad path {path!r}: relative, without empty, '.' or '..' parts")
    if not path.isprintable() or "\\" in path:
        raise WorkspaceError(f"bad path {path!r}: printable characters only, no backslash")
    return path


@dataclass(frozen=True)
class Tree:
    files: Mapping[str, str] = field(default_factory=dict)  # path -> blob hash

    def to_value(self) -> dict[str, Any]:
        return {"$kind": "tree", "files": dict(sorted(self.files.items()))}

    def encode(self) -> bytes:
        return cbor.encode(self.to_value())

    @property
    def hash(self) -> str:
        return cbor.sha256_text(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        v = _object(data, "tree")
        files = v.get("files")
        if not isinstance(files, dict) or not all(isinstance(k, str) and cbor.is_hash_text(h)
                                                  for k, h in files.items()):
            raise WorkspaceError("malformed tree object")
        return cls(dict(files))


EMPTY_TREE = Tree()


@dataclass(frozen=True)
class Commit:
    tree: str
    parent: str | None
    message: str
    time_ns: int

    def to_value(self) -> dict[str, Any]:
        return {"$kind": "commit", "tree": self.tree, "parent": self.parent, "message": self.message,
                "time_ns": self.time_ns}

    def encode(self) -> bytes:
        return cbor.encode(self.to_value())

    @property
    def hash(self) -> str:
        return cbor.sha256_text(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        v = _object(data, "commit")
        try:
            return cls(v["tree"], v["parent"], v["message"], v["time_ns"])
        except KeyError as exc:
            raise WorkspaceError(f"malformed commit object: no {exc}") from None


@dataclass(frozen=True)
class Ref:
    """Where a workspace is: its head commit (``None`` before the first) and its working tree."""

    head: str | None = None
    tree: str = EMPTY_TREE.hash

    def to_value(self) -> dict[str, Any]:
        return {"head": self.head, "tree": self.tree}

    @classmethod
    def from_value(cls, v: Any) -> Ref:
        if not isinstance(v, dict) or not cbor.is_hash_text(v.get("tree")):
            raise WorkspaceError("malformed workspace ref")
        return cls(v.get("head"), v["tree"])


def _object(data: bytes, kind: str) -> dict[str, Any]:
    try:
        v = cbor.decode(data)
    except CborError as exc:
        raise WorkspaceError(f"not a {kind} object: {exc}") from None
    if not isinstance(v, dict) or v.get("$kind") != kind:
        raise WorkspaceError(f"not a {kind} object")
    return v


# --- operations (pure) -------------------------------------------------------------------------------


def write(tree: Tree, path: str, data: bytes, max_files: int = MAX_FILES,
          max_file_bytes: int = MAX_FILE_BYTES) -> tuple[Tree, list[bytes]]:
    """The tree with ``path`` holding ``data``, and the objects to store (the blob, the tree)."""
    path = check_path(path)
    if len(data) > max_file_bytes:
        raise WorkspaceError(f"{path} is {len(data)} bytes; the limit is {max_file_bytes}")
    if path not in tree.files and len(tree.files) >= max_files:
        raise WorkspaceError(f"the workspace holds {len(tree.files)} files; the limit is {max_files}")
    for other in tree.files:  # a file and a directory of one name cannot both exist
        if other.startswith(path + "/") or path.startswith(other + "/"):
            raise WorkspaceError(f"{path} and {other} cannot both exist (one is a directory of the other)")
    new = Tree({**tree.files, path: cbor.sha256_text(data)})
    return new, [data, new.encode()]


def delete(tree: Tree, path: str) -> tuple[Tree, list[bytes]]:
    path = check_path(path)
    if path not in tree.files:
        raise WorkspaceError(f"no file {path}")
    new = Tree({p: h for p, h in tree.files.items() if p != path})
    return new, [new.encode()]


def list_files(tree: Tree, prefix: str = "") -> list[tuple[str, str]]:
    return [(p, h) for p, h in sorted(tree.files.items()) if p.startswith(prefix)]


def read(tree: Tree, path: str, get: Get) -> bytes:
    path = check_path(path)
    h = tree.files.get(path)
    if h is None:
        shown = ", ".join(sorted(tree.files)[:20]) or "none"
        raise WorkspaceError(f"no file {path} (files: {shown})")
    return get(h)


def diff(old: Tree, new: Tree, get: Get) -> list[dict[str, Any]]:
    """What changed from ``old`` to ``new``: ``[{path, status: added|modified|deleted, diff}]``,
    ``diff`` a unified diff of text files ("" for binary ones)."""
    out = []
    for path in sorted(set(old.files) | set(new.files)):
        a, b = old.files.get(path), new.files.get(path)
        if a == b:
            continue
        status = "added" if a is None else "deleted" if b is None else "modified"
        before = get(a) if a is not None else b""
        after = get(b) if b is not None else b""
        out.append({"path": path, "status": status, "diff": _unified(path, before, after, a is None, b is None)})
    return out


def _unified(path: str, before: bytes, after: bytes, added: bool, deleted: bool) -> str:
    try:
        a, b = before.decode(), after.decode()
    except UnicodeDecodeError:
        return ""
    text = "".join(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                        "/dev/null" if added else f"a/{path}", "/dev/null" if deleted else f"b/{path}",
                                        n=DIFF_CONTEXT))
    return text if len(text) <= MAX_DIFF_CHARS else text[:MAX_DIFF_CHARS] + "\n[diff cut]\n"


def commit(tree_hash: str, parent: str | None, message: str, time_ns: int) -> Commit:
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE_CHARS:
        raise WorkspaceError(f"a commit message is non-empty text of at most {MAX_MESSAGE_CHARS} characters")
    return Commit(tree_hash, parent, message, time_ns)


def log(head: str | None, get: Get, limit: int = 20) -> list[tuple[str, Commit]]:
    """The commits from ``head`` back, newest first."""
    out: list[tuple[str, Commit]] = []
    at = head
    while at is not None and len(out) < limit:
        c = Commit.decode(get(at))
        out.append((at, c))
        at = c.parent
    return out


# --- the Python API --------------------------------------------------------------------------------


class ObjectStore(Protocol):
    def get(self, address: str) -> bytes: ...

    def put(self, data: bytes) -> str: ...


class MemoryStore:
    """Objects in a dict, by their SHA-256: a CAS for tests and scripts."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get(self, address: str) -> bytes:
        try:
            return self.objects[address]
        except KeyError:
            raise WorkspaceError(f"no object {address}") from None

    def put(self, data: bytes) -> str:
        address = cbor.sha256_text(data)
        self.objects[address] = bytes(data)
        return address


class Workspace:
    """A workspace over an object store: read, write, delete, list, diff, commit, log.

    ``ref`` is where it is; keep it (it is all the state there is) to reopen the
    workspace later with ``Workspace(store, ref)``."""

    def __init__(self, store: ObjectStore, ref: Ref | None = None) -> None:
        self.store = store
        self.ref = ref or Ref()
        if self.ref.tree == EMPTY_TREE.hash:
            store.put(EMPTY_TREE.encode())

    def tree(self, at: str | None = None) -> Tree:
        """The working tree, or the tree of commit ``at``."""
        if at is None:
            return Tree.decode(self.store.get(self.ref.tree))
        return Tree.decode(self.store.get(Commit.decode(self.store.get(at)).tree))

    def read(self, path: str, at: str | None = None) -> bytes:
        return read(self.tree(at), path, self.store.get)

    def write(self, path: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else content
        tree, objects = write(self.tree(), path, data)
        self._store(objects)
        self.ref = Ref(self.ref.head, tree.hash)

    def delete(self, path: str) -> None:
        tree, objects = delete(self.tree(), path)
        self._store(objects)
        self.ref = Ref(self.ref.head, tree.hash)

    def list(self, prefix: str = "", at: str | None = None) -> list[str]:
        return [p for p, _ in list_files(self.tree(at), prefix)]

    def diff(self, old: str | None = None, new: str | None = None) -> list[dict[str, Any]]:
        """From commit ``old`` (default: the head) to commit ``new`` (default: the working tree)."""
        start = old or self.ref.head
        before = self.tree(start) if start else EMPTY_TREE
        return diff(before, self.tree(new), self.store.get)

    def commit(self, message: str, time_ns: int) -> str:
        c = commit(self.ref.tree, self.ref.head, message, time_ns)
        address = self.store.put(c.encode())
        self.ref = Ref(address, self.ref.tree)
        return address

    def log(self, limit: int = 20) -> list[tuple[str, Commit]]:
        return log(self.ref.head, self.store.get, limit)

    def _store(self, objects: list[bytes]) -> None:
        for data in objects:
            self.store.put(data)
