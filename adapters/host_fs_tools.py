"""``host.fs.edit``, ``host.fs.apply_patch``, ``host.fs.grep``, ``host.fs.glob``:
a coding agent's file tools, under the same ``host.fs`` grant as ``host_fs``.

The text work is done by the sans-IO cores in ``aos.agents.tools``; this
module only reads and writes, with ``host_fs``'s confinement: paths are
relative to the grant root, ``..`` is refused, symlinks are resolved and must
stay inside the root, and files are opened from a root directory fd one
component at a time with ``O_NOFOLLOW`` (see ``host_fs``'s docstring). A file
with more than one hard link is never changed (``hard_link``): the count is
read from the fd the file is read through.

Limits. Patterns, patches and the files themselves come from a world or a
model, so every operation runs in a worker thread (never on the event loop)
under a ``Deadline`` of ``time_limit_s`` (30 s by default), checked between
bounded steps by this module, the walk (``host_fs_walk``) and the cores;
running past it ends the effect with a ``timeout`` receipt and changes
nothing. The regexes run in RE2 (linear time, the GIL released while it
matches), edit's tolerant match is linear too, and the sizes are capped:
files over ``max_read_bytes`` are not edited or patched, grep skips files
over 16 MiB and stops after 256 MiB of text, and a walk stops after 200,000
files, 1,000,000 entries or 64 levels (``truncated``).

Changes are all-or-nothing. An edit or a patch is planned completely in
memory first (every file read, every hunk placed); then each new text is
written to a temp file beside its target and fsynced; only then are the
temp files renamed over their targets and deleted files renamed aside. If
anything fails on the way, the renames done so far are undone (overwritten
files are rewritten from the text read at the start), temp files and the
directories made for new files are removed, and the receipt is an error.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat as st_
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Self

from aos.agents.tools import edit as edit_core
from aos.agents.tools import patch as patch_core
from aos.agents.tools import search as search_core
from aos.agents.tools.errors import ToolError, ToolTimeout
from aos.agents.tools.limits import Deadline

from ._common import Fail, effect_name, grant_num, p_bool, p_int, p_str
from .base import EffectCall, FrameSink, Receipt
from .host_fs import (
    MAX_READ_BYTES,
    MAX_WRITE_BYTES,
    _decode,
    _lstat,
    _os_fail,
    _Root,
    _show,
    _split,
    _write_all,
    check_links,
)
from .host_fs_walk import walk

DEFAULT_GREP_RESULTS = 100
DEFAULT_GLOB_RESULTS = 1000
MAX_RESULTS = 10_000
MAX_GREP_FILE_BYTES = 16 * 1024 * 1024  # larger files are not searched
MAX_GREP_TOTAL_BYTES = 256 * 1024 * 1024  # a grep stops (truncated) after searching this much text
TIME_LIMIT_S = 30.0  # a file tool that runs longer ends with a timeout receipt
_WRITES = {"host.fs.edit", "host.fs.apply_patch"}
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class HostFsToolsAdapter:
    """Carries out the agent file tools under a ``{"root", "read_only"}`` ``host.fs`` grant."""

    kinds: tuple[str, ...] = (
        "host.fs.edit",
        "host.fs.apply_patch",
        "host.fs.grep",
        "host.fs.glob",
    )

    def __init__(self, time_limit_s: float = TIME_LIMIT_S) -> None:
        self.time_limit_s = time_limit_s

    async def run(self, call: EffectCall, emit_frame: FrameSink) -> Receipt:
        kind = effect_name(call.kind)
        if kind not in self.kinds:
            return Receipt.fail("unsupported", f"host.fs tools adapter does not handle {call.kind!r}")
        op = getattr(self, "_" + kind.rsplit(".", 1)[-1])
        try:
            read_only = call.grant.get("read_only")
            if read_only not in (None, True, False):
                raise Fail("bad_grant", "grant parameter 'read_only' must be true or false")
            if read_only and kind in _WRITES:
                raise Fail("read_only", f"{kind} refused: the grant is read-only")
            root = _Root(call.grant)
            return await asyncio.to_thread(self._timed, op, root, call.params, call.grant)
        except Fail as f:
            return f.receipt()
        except ToolTimeout as e:
            return Receipt("timeout", {}, "timeout", f"{kind} {e}")
        except ToolError as e:
            return Receipt.fail(e.reason, str(e))
        except OSError as e:
            return _os_fail(e, kind).receipt()

    def _timed(self, op: Any, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        # the clock starts in the worker thread: time spent queued for a thread is not the tool's
        result: Receipt = op(root, params, grant, Deadline(self.time_limit_s))
        return result

    # --- operations (run in a worker thread) ---------------------------------------------------
    def _edit(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any], deadline: Deadline) -> Receipt:
        parts = _split(params)
        old = p_str(params, "old_string")
        new = p_str(params, "new_string")
        replace_all = p_bool(params, "replace_all", False)
        phys = root.locate(parts, follow=True)
        if not phys:
            raise Fail("is_a_directory", f"{_show(parts)!r} is a directory")
        key = "/".join(phys)
        with _Files(root, grant) as files:
            text = files.read(key)
            if text is None:
                raise Fail("not_found", f"{_show(parts)!r} does not exist")
            result = edit_core.edit_text(text, old, new, replace_all, deadline=deadline)
            files.commit({key: result.text})
        return Receipt.ok(
            path=_show(parts),
            replacements=result.replacements,
            strategy=result.strategy,
        )

    def _apply_patch(
        self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any], deadline: Deadline
    ) -> Receipt:
        text = p_str(params, "patch")
        base = _split(params, default=".")  # the directory patch paths are relative to
        patch = patch_core.parse_patch(text)

        def key(path: str, follow: bool) -> str:
            if "\0" in path:
                raise Fail("invalid_params", f"patch path {path!r} contains a NUL byte")
            if path.startswith(("/", "~/")) or path == "~":
                raise Fail(
                    "path_escape",
                    f"patch path {path!r} is absolute; paths are relative to the root",
                )
            parts = [p for p in path.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise Fail("path_escape", f"patch path {path!r} may not contain '..'")
            phys = root.locate(base + parts, follow=follow)
            if not phys or not parts:
                raise Fail("patch_invalid", f"patch path {path!r} names a directory")
            return "/".join(phys)

        ops: list[patch_core.Operation] = []
        shown: dict[str, str] = {}  # physical key -> the path as the patch spelled it (relative to the root)
        for op in patch.operations:
            k = key(op.path, follow=not isinstance(op, patch_core.DeleteFile))
            shown.setdefault(k, _show(base + [p for p in op.path.split("/") if p not in ("", ".")]))
            if isinstance(op, patch_core.UpdateFile) and op.move_to is not None:
                dest = key(op.move_to, follow=True)
                shown.setdefault(
                    dest,
                    _show(base + [p for p in op.move_to.split("/") if p not in ("", ".")]),
                )
                ops.append(replace(op, path=k, move_to=dest))
            else:
                ops.append(replace(op, path=k))
        with _Files(root, grant) as files:
            result = patch_core.apply_patch(patch_core.Patch(tuple(ops)), files.read, deadline=deadline)
            moved_from = {dst: src for src, dst in result.moved}
            files.commit(result.changes, moved_from)

        def name(k: str) -> str:
            return shown.get(k, k)

        return Receipt.ok(
            added=[name(k) for k in result.added],
            updated=[name(k) for k in result.updated],
            deleted=[name(k) for k in result.deleted],
            moved=[[name(a), name(b)] for a, b in result.moved],
        )

    def _grep(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any], deadline: Deadline) -> Receipt:
        pattern = p_str(params, "pattern")
        glob = p_str(params, "glob", None)
        case_insensitive = p_bool(params, "case_insensitive", False)
        limit = min(p_int(params, "max_results", DEFAULT_GREP_RESULTS, minimum=1), MAX_RESULTS)
        search_core.compile_regex(pattern, case_insensitive)  # a bad pattern fails before any walk
        base, paths, cut = walk(root, _split(params, default="."), deadline)
        reader = _GrepReader(root, base)
        try:
            found = search_core.grep(
                pattern,
                paths,
                reader.read,
                glob=glob,
                case_insensitive=case_insensitive,
                max_results=limit,
                max_bytes=MAX_GREP_TOTAL_BYTES,
                deadline=deadline,
            )
        finally:
            reader.close()
        return Receipt.ok(
            matches=[{"path": _join(base, m.path), "line": m.line, "text": m.text} for m in found.matches],
            truncated=found.truncated or cut,
        )

    def _glob(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any], deadline: Deadline) -> Receipt:
        pattern = p_str(params, "pattern")
        limit = min(p_int(params, "max_results", DEFAULT_GLOB_RESULTS, minimum=1), MAX_RESULTS)
        search_core.glob_matcher(pattern)  # a bad pattern fails before any walk
        base, paths, cut = walk(root, _split(params, default="."), deadline, dir_only=True)
        found = search_core.glob(pattern, paths, limit, deadline=deadline)
        return Receipt.ok(
            paths=[_join(base, p) for p in found.paths],
            truncated=found.truncated or cut,
        )


# --- reading and committing files ---------------------------------------------------------------
class _Files:
    """Reads files below the root by physical key (``a/b.txt``) and commits a
    set of changes all or nothing. Use as a context manager (closes dir fds)."""

    def __init__(self, root: _Root, grant: Mapping[str, Any]) -> None:
        self.root = root
        self.max_read = int(grant_num(grant, "max_read_bytes", MAX_READ_BYTES))
        self.max_write = int(grant_num(grant, "max_write_bytes", MAX_WRITE_BYTES))
        self.fds: dict[str, int] = {}
        self.original: dict[str, tuple[bytes, int] | None] = {}  # key -> (bytes, mode) of a file read; None: absent

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def dir(self, dirs: list[str], shown: str) -> int:
        k = "/".join(dirs)
        if k not in self.fds:
            self.fds[k] = self.root.open_dir(dirs, shown)
        return self.fds[k]

    def read(self, key: str) -> str | None:
        """The text of the file ``key``, None if it does not exist; a symlink (only a
        delete names one) reads as ``""``. Fails for directories, non-text, huge files,
        and files with other hard links (every file read here is one the caller changes,
        or one whose existence is a conflict anyway)."""
        parts = key.split("/")
        try:
            dfd = self.dir(parts[:-1], key)
        except Fail as f:
            if f.error == "not_found":
                self.original[key] = None
                return None
            raise
        info = _lstat(parts[-1], dfd)
        if info is None:
            self.original[key] = None
            return None
        if st_.S_ISLNK(info.st_mode):
            check_links(info, key)
            return ""
        if st_.S_ISDIR(info.st_mode):
            raise Fail("is_a_directory", f"{key!r} is a directory")
        try:
            fd = os.open(parts[-1], _READ, dir_fd=dfd)
        except OSError as e:
            raise _os_fail(e, key) from None
        try:
            info = os.fstat(fd)  # the file itself, whatever the name pointed to a moment ago
            if st_.S_ISDIR(info.st_mode):
                raise Fail("is_a_directory", f"{key!r} is a directory")
            if not st_.S_ISREG(info.st_mode):
                raise Fail("not_a_file", f"{key!r} is not a regular file")
            check_links(info, key)
            if info.st_size > self.max_read:
                raise Fail(
                    "too_large",
                    f"{key!r} is {info.st_size} bytes; the limit is {self.max_read}",
                )
            data = _read_all(fd, self.max_read + 1)
        finally:
            os.close(fd)
        if len(data) > self.max_read:
            raise Fail("too_large", f"{key!r} is over {self.max_read} bytes")
        self.original[key] = (data, st_.S_IMODE(info.st_mode))
        return _decode(data, False, key)

    def commit(
        self,
        changes: Mapping[str, str | None],
        mode_from: Mapping[str, str] | None = None,
    ) -> None:
        """Write every text in ``changes`` and delete every key mapped to None, or change nothing."""
        mode_from = mode_from or {}
        writes = {k: v.encode("utf-8") for k, v in changes.items() if v is not None}
        for k, data in writes.items():
            if len(data) > self.max_write:
                raise Fail(
                    "too_large",
                    f"the new {k!r} would be {len(data)} bytes; the limit is {self.max_write}",
                )
        deletes = [k for k, v in changes.items() if v is None and self.original.get(k, ()) is not None]
        made: list[list[str]] = []  # directories created for new files, to remove on failure
        staged: list[tuple[int, str, str, str]] = []  # (dir fd, temp name, target name, key)
        undo: list[tuple[str, int, str, Any]] = []
        try:
            for k, data in writes.items():
                parts = k.split("/")
                dfd = self._dir_making(parts[:-1], k, made)
                old = self.original.get(k)
                src = self.original.get(mode_from.get(k, ""))
                mode = old[1] if old else src[1] if src else None
                staged.append((dfd, _stage(dfd, data, mode), parts[-1], k))
            while staged:
                dfd, tmp, name, k = staged[0]
                old = self.original.get(k)
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                staged.pop(0)
                undo.append(("rewrite", dfd, name, old) if old else ("unlink", dfd, name, None))
            for k in deletes:
                parts = k.split("/")
                dfd = self.dir(parts[:-1], k)
                aside = f".aos-del-{secrets.token_hex(6)}"
                os.rename(parts[-1], aside, src_dir_fd=dfd, dst_dir_fd=dfd)
                undo.append(("restore", dfd, parts[-1], aside))
        except BaseException as e:
            for dfd, tmp, _, _ in staged:
                _quiet(os.unlink, tmp, dir_fd=dfd)
            for action, dfd, name, arg in reversed(undo):
                if action == "rewrite":
                    _quiet(_rewrite, dfd, name, *arg)
                elif action == "unlink":
                    _quiet(os.unlink, name, dir_fd=dfd)
                else:
                    _quiet(os.replace, arg, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            for dirs in reversed(made):
                _quiet(self._rmdir, dirs)
            if isinstance(e, OSError):
                raise _os_fail(e, "commit") from None
            raise
        for action, dfd, _name, arg in undo:
            if action == "restore":
                _quiet(os.unlink, arg, dir_fd=dfd)

    def _rmdir(self, dirs: list[str]) -> None:
        fd = self.root.open_dir(dirs[:-1], "/".join(dirs))
        try:
            os.rmdir(dirs[-1], dir_fd=fd)
        finally:
            os.close(fd)

    def _dir_making(self, dirs: list[str], shown: str, made: list[list[str]]) -> int:
        k = "/".join(dirs)
        if k in self.fds:
            return self.fds[k]
        for i in range(len(dirs)):
            try:
                os.close(self.root.open_dir(dirs[: i + 1], shown))
            except Fail as f:
                if f.error != "not_found":
                    raise
                made.extend(dirs[: j + 1] for j in range(i, len(dirs)))
                break
        self.fds[k] = self.root.open_dir(dirs, shown, make=True)
        return self.fds[k]


def _rewrite(dfd: int, name: str, data: bytes, mode: int) -> None:
    os.replace(_stage(dfd, data, mode), name, src_dir_fd=dfd, dst_dir_fd=dfd)


def _stage(dfd: int, data: bytes, mode: int | None) -> str:
    """Write ``data`` to a new fsynced temp file in ``dfd``; its name. ``mode`` None: 0o666 less umask."""
    tmp = f".aos-tmp-{secrets.token_hex(6)}"
    fd = os.open(
        tmp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o666,
        dir_fd=dfd,
    )
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            _write_all(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        _quiet(os.unlink, tmp, dir_fd=dfd)
        raise
    return tmp


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except (OSError, Fail):
        pass


def _read_all(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    while limit > 0:
        chunk = os.read(fd, min(limit, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


# --- walking ------------------------------------------------------------------------------------
def _join(base: str, rel: str) -> str:
    return rel if base in ("", ".") else f"{base}/{rel}"


class _GrepReader:
    """``read(rel)`` for grep: the text of the file ``rel`` below ``base``; None
    for binary (a NUL in the first 8 KiB), oversized or vanished files. Keeps
    the last directory fd open, since sorted paths come a directory at a time."""

    def __init__(self, root: _Root, base: str) -> None:
        self.root = root
        self.base = base.split("/") if base else []
        self.cached: tuple[str, int] | None = None

    def close(self) -> None:
        if self.cached is not None:
            os.close(self.cached[1])
            self.cached = None

    def _dir(self, dirs: list[str]) -> int:
        k = "/".join(dirs)
        if self.cached is None or self.cached[0] != k:
            self.close()
            self.cached = (k, self.root.open_dir(dirs, k or "."))
        return self.cached[1]

    def read(self, rel: str) -> str | None:
        parts = self.base + rel.split("/")
        try:
            fd = os.open(parts[-1], _READ, dir_fd=self._dir(parts[:-1]))
        except (Fail, OSError):
            return None
        try:
            info = os.fstat(fd)
            if not st_.S_ISREG(info.st_mode) or info.st_size > MAX_GREP_FILE_BYTES:
                return None
            data = _read_all(fd, MAX_GREP_FILE_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if b"\0" in data[:8192] or len(data) > MAX_GREP_FILE_BYTES:
            return None
        return data.decode("utf-8", errors="replace")
