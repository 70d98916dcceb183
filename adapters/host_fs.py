"""``host.fs.*``: files under one host directory, the grant's ``root``.

How confinement works. A path in params is relative to the root; a leading
``/`` means the root, never the host's ``/``, and any ``..`` component is
refused outright (``path_escape``). The path is resolved with
``os.path.realpath`` (the final component too, except for ``delete``,
``move`` and ``stat`` with ``follow_symlinks: false``, which act on a symlink
itself) and refused unless the result is inside the root's realpath, so a
symlink in the root that points outside is never followed; a symlink that
stays inside works. The resolved path is then opened one component at a
time from a directory fd of the root with ``O_NOFOLLOW`` (``openat``
style), so if a directory is swapped for a symlink between the check and the
use, the open fails instead of escaping. All I/O runs in a worker thread.

Writes replace the file atomically (temp file in the same directory, fsync,
rename) unless ``append`` is set; ``overwrite: false`` creates the file
exclusively (``O_EXCL``).

Hard links. A name inside the root can be a hard link to a file whose other
names are outside it; writing through it would change that file. So no
change is made to a file with more than one link (``st_nlink > 1``): write,
append, delete and move are refused ``hard_link``, as are the file tools'
edits and patches (``host_fs_tools``). The count is read from an fd opened
with ``O_NOFOLLOW`` on the name itself, and an append writes through that
same fd, so a link made between the check and the write cannot redirect
it. A replacing write renames a new file over the name: that replaces the
name and never writes through the old inode, so a link made after the check
is broken, not written. Reading a linked file is allowed: the bytes are what
that name shows, and only someone who could already reach the file could
have linked it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import stat as st_
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._common import (
    Fail,
    decode_text,
    effect_name,
    grant_num,
    p_bool,
    p_content,
    p_int,
    p_str,
)
from .base import EffectCall, FrameSink, Receipt

MiB = 1024 * 1024
DEFAULT_READ_BYTES = 8 * MiB
MAX_READ_BYTES = 64 * MiB  # grant ``max_read_bytes`` overrides
MAX_WRITE_BYTES = 64 * MiB  # grant ``max_write_bytes`` overrides
DEFAULT_LIST_ENTRIES = 10_000

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITES = {"host.fs.write", "host.fs.delete", "host.fs.move", "host.fs.mkdir"}


def _show(parts: list[str]) -> str:
    return "/".join(parts) or "."


def _split(params: Mapping[str, Any], name: str = "path", default: Any = ...) -> list[str]:
    path = p_str(params, name, default)
    if "\0" in path:
        raise Fail("invalid_params", f"{name!r} contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Fail("path_escape", f"path {path!r} may not contain '..'")
    return parts


def _kind(mode: int) -> str:
    if st_.S_ISREG(mode):
        return "file"
    if st_.S_ISDIR(mode):
        return "dir"
    if st_.S_ISLNK(mode):
        return "symlink"
    return "other"


def _os_fail(e: OSError, shown: str) -> Fail:
    code = {
        errno.ENOENT: ("not_found", "does not exist"),
        errno.EISDIR: ("is_a_directory", "is a directory"),
        errno.ENOTDIR: ("not_a_directory", "is not a directory (or a parent is not)"),
        errno.EEXIST: ("exists", "already exists"),
        errno.ENOTEMPTY: ("not_empty", "is a directory that is not empty"),
        errno.ELOOP: ("path_escape", "is a symlink that cannot be followed safely"),
        errno.EACCES: ("permission_denied", "permission denied"),
        errno.EPERM: ("permission_denied", "operation not permitted"),
        errno.EINVAL: ("invalid_params", "invalid operation (e.g. moving a directory into itself)"),
        errno.EXDEV: ("io_error", "cannot move across file systems"),
        errno.ENOSPC: ("io_error", "no space left on device"),
    }.get(e.errno or 0)
    if code is None:
        return Fail("io_error", f"{shown!r}: {e.strerror or e}")
    return Fail(code[0], f"{shown!r} {code[1]}")


class _Root:
    """The grant's root directory and safe access below it."""

    def __init__(self, grant: Mapping[str, Any]) -> None:
        root = grant.get("root")
        if not isinstance(root, str) or not os.path.isabs(root):
            raise Fail("bad_grant", "host.fs grant needs an absolute 'root'")
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise Fail("not_found", "the grant's root directory does not exist")
        self.real = real
        self._prefix = real.rstrip("/") + "/"

    def locate(self, parts: list[str], follow: bool) -> list[str]:
        """Resolve symlinks (the last one only if ``follow``) and return the
        components of the result relative to the root; ``path_escape`` if it
        is outside."""
        if not parts:
            return []
        if follow:
            real = os.path.realpath(os.path.join(self.real, *parts))
        else:
            real = os.path.join(os.path.realpath(os.path.join(self.real, *parts[:-1])), parts[-1])
        if real != self.real and not real.startswith(self._prefix):
            raise Fail("path_escape", f"path {_show(parts)!r} leads outside the grant root")
        rel = real[len(self.real) :].strip("/")
        return rel.split("/") if rel else []

    def open_dir(self, dirs: list[str], shown: str, make: bool = False) -> int:
        """An fd of the directory ``dirs`` below the root, opened one
        component at a time without following symlinks."""
        fd = os.open(self.real, _DIR)
        try:
            for i, name in enumerate(dirs):
                try:
                    nfd = os.open(name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not make:
                        raise Fail("not_found", f"{_show(dirs[: i + 1])!r} does not exist") from None
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nfd = os.open(name, _DIR, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        if st_.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                            raise Fail("path_escape", f"{shown!r}: a symlink changed during access") from None
                        raise Fail("not_a_directory", f"{_show(dirs[: i + 1])!r} is not a directory") from None
                    raise _os_fail(e, _show(dirs[: i + 1])) from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def parent(self, phys: list[str], shown: str, make: bool = False) -> Iterator[tuple[int, str]]:
        fd = self.open_dir(phys[:-1], shown, make)
        try:
            yield fd, phys[-1]
        finally:
            os.close(fd)


def check_links(info: os.stat_result, shown: str) -> None:
    """Refuse a change to a non-directory with more than one hard link (see the module docstring)."""
    if info.st_nlink > 1 and not st_.S_ISDIR(info.st_mode):
        raise Fail(
            "hard_link",
            f"{shown!r} has {info.st_nlink} hard links; host.fs does not change a file with other names "
            "(one may be outside the root): copy it to a new file first",
        )


def _lstat(name: str, dfd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _target(name: str, dfd: int, shown: str) -> os.stat_result | None:
    """The file a write would change (None: absent), from an ``O_PATH | O_NOFOLLOW`` fd
    (no read permission needed); refused unless a regular file with one link."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _os_fail(e, shown) from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if st_.S_ISLNK(info.st_mode):
        raise Fail("path_escape", f"{shown!r}: a symlink changed during access")
    if st_.S_ISDIR(info.st_mode):
        raise Fail("is_a_directory", f"{shown!r} is a directory")
    if not st_.S_ISREG(info.st_mode):
        raise Fail("not_a_file", f"{shown!r} is not a regular file")
    check_links(info, shown)
    return info


def _decode(data: bytes, truncated: bool, shown: str) -> str:
    try:
        return decode_text(data, truncated, errors="strict")
    except UnicodeDecodeError:
        raise Fail("not_text", f"{shown!r} is not valid UTF-8; read it with encoding 'bytes'") from None


class HostFsAdapter:
    """Carries out ``host.fs.*`` effects under a ``{"root", "read_only"}`` grant."""

    kinds: tuple[str, ...] = (
        "host.fs.read",
        "host.fs.write",
        "host.fs.list",
        "host.fs.stat",
        "host.fs.delete",
        "host.fs.move",
        "host.fs.mkdir",
    )

    async def run(self, call: EffectCall, emit_frame: FrameSink) -> Receipt:
        kind = effect_name(call.kind)
        op = getattr(self, "_" + kind.rsplit(".", 1)[-1], None) if kind in self.kinds else None
        if op is None:
            return Receipt.fail("unsupported", f"host.fs adapter does not handle {call.kind!r}")
        try:
            read_only = call.grant.get("read_only")
            if read_only not in (None, True, False):
                raise Fail("bad_grant", "grant parameter 'read_only' must be true or false")
            if read_only and kind in _WRITES:
                raise Fail("read_only", f"{kind} refused: the grant is read-only")
            root = _Root(call.grant)
            return await asyncio.to_thread(op, root, call.params, call.grant)
        except Fail as f:
            return f.receipt()
        except OSError as e:
            return _os_fail(e, kind).receipt()

    # --- operations (run in a worker thread) ---------------------------------------------------
    def _read(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        parts = _split(params)
        shown = _show(parts)
        encoding = p_str(params, "encoding", "utf-8", choices=("utf-8", "bytes"))
        cap = int(grant_num(grant, "max_read_bytes", MAX_READ_BYTES))
        limit = min(p_int(params, "max_bytes", DEFAULT_READ_BYTES), cap)
        offset = p_int(params, "offset", 0)
        phys = root.locate(parts, follow=True)
        if not phys:
            raise Fail("is_a_directory", f"{shown!r} is a directory")
        with root.parent(phys, shown) as (dfd, name):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
            except OSError as e:
                raise _os_fail(e, shown) from None
            try:
                info = os.fstat(fd)
                if st_.S_ISDIR(info.st_mode):
                    raise Fail("is_a_directory", f"{shown!r} is a directory")
                if not st_.S_ISREG(info.st_mode):
                    raise Fail("not_a_file", f"{shown!r} is not a regular file")
                chunks: list[bytes] = []
                want, pos = limit + 1, offset  # one byte more than the cap tells truncation
                while want > 0:
                    chunk = os.pread(fd, min(want, MiB), pos)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    want -= len(chunk)
                    pos += len(chunk)
            finally:
                os.close(fd)
        data = b"".join(chunks)
        truncated = len(data) > limit
        data = data[:limit]
        content: str | bytes = data if encoding == "bytes" else _decode(data, truncated, shown)
        return Receipt.ok(
            path=shown, content=content, encoding=encoding, size=info.st_size, offset=offset, truncated=truncated
        )

    def _write(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        parts = _split(params)
        shown = _show(parts)
        if "content" not in params:
            raise Fail("invalid_params", "'content' is required")
        data = p_content(params, "content")
        p_str(params, "encoding", "utf-8", choices=("utf-8", "bytes"))  # text is always written as UTF-8
        overwrite = p_bool(params, "overwrite", True)
        append = p_bool(params, "append", False)
        make = p_bool(params, "parents", False)
        cap = int(grant_num(grant, "max_write_bytes", MAX_WRITE_BYTES))
        if len(data) > cap:
            raise Fail("too_large", f"content is {len(data)} bytes; the limit is {cap}")
        phys = root.locate(parts, follow=True)
        if not phys:
            raise Fail("is_a_directory", f"{shown!r} is a directory")
        with root.parent(phys, shown, make) as (dfd, name):
            old = _target(name, dfd, shown)
            if old is not None and not overwrite and not append:
                raise Fail("exists", f"{shown!r} already exists")
            try:
                if append or old is None:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                    flags |= os.O_APPEND if append else os.O_EXCL
                    fd = os.open(name, flags, 0o666, dir_fd=dfd)
                    try:
                        # checked on the fd that is written: a name swapped after _target changes nothing
                        info = os.fstat(fd)
                        if not st_.S_ISREG(info.st_mode):
                            raise Fail("not_a_file", f"{shown!r} is not a regular file")
                        check_links(info, shown)
                        _write_all(fd, data)
                    finally:
                        os.close(fd)
                else:
                    tmp = f".aos-tmp-{secrets.token_hex(6)}"
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                    try:
                        try:
                            os.fchmod(fd, st_.S_IMODE(old.st_mode))
                            _write_all(fd, data)
                        finally:
                            os.close(fd)
                        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                    except BaseException:
                        try:
                            os.unlink(tmp, dir_fd=dfd)
                        except OSError:
                            pass
                        raise
            except OSError as e:
                raise _os_fail(e, shown) from None
        return Receipt.ok(path=shown, size=len(data), created=old is None, appended=append)

    def _list(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        parts = _split(params, default=".")
        shown = _show(parts)
        limit = p_int(params, "max_entries", DEFAULT_LIST_ENTRIES, minimum=1)
        phys = root.locate(parts, follow=True)
        try:
            fd = root.open_dir(phys, shown)
        except FileNotFoundError:
            raise Fail("not_found", f"{shown!r} does not exist") from None
        try:
            entries = []
            with os.scandir(fd) as it:
                for entry in it:
                    info = entry.stat(follow_symlinks=False)
                    kind = _kind(info.st_mode)
                    entries.append({"name": entry.name, "type": kind, "size": info.st_size if kind == "file" else None})
        except OSError as e:
            raise _os_fail(e, shown) from None
        finally:
            os.close(fd)
        entries.sort(key=lambda e: e["name"])
        return Receipt.ok(path=shown, entries=entries[:limit], truncated=len(entries) > limit)

    def _stat(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        parts = _split(params, default=".")
        shown = _show(parts)
        follow = p_bool(params, "follow_symlinks", True)
        phys = root.locate(parts, follow=follow)
        try:
            if not phys:
                info = os.stat(root.real)
            else:
                with root.parent(phys, shown) as (dfd, name):
                    info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError as e:
            raise _os_fail(e, shown) from None
        return Receipt.ok(
            path=shown,
            type=_kind(info.st_mode),
            size=info.st_size,
            mode=st_.S_IMODE(info.st_mode),
            mtime_ns=info.st_mtime_ns,
        )

    def _delete(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        parts = _split(params)
        shown = _show(parts)
        recursive = p_bool(params, "recursive", False)
        if not parts:
            raise Fail("invalid_params", "refusing to delete the grant root")
        phys = root.locate(parts, follow=False)
        with root.parent(phys, shown) as (dfd, name):
            old = _lstat(name, dfd)
            if old is None:
                raise Fail("not_found", f"{shown!r} does not exist")
            kind = _kind(old.st_mode)
            check_links(old, shown)  # a directory's own count is its subdirectories: not checked
            try:
                if kind != "dir":
                    os.unlink(name, dir_fd=dfd)  # a symlink is removed itself, never its target
                elif recursive:
                    shutil.rmtree(name, dir_fd=dfd)  # fd-based, does not follow symlinks
                else:
                    os.rmdir(name, dir_fd=dfd)
            except OSError as e:
                f = _os_fail(e, shown)
                if f.error == "not_empty":
                    f.message += "; pass recursive: true to delete it and its contents"
                raise f from None
        return Receipt.ok(path=shown, type=kind)

    def _move(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        # ``path`` is accepted for ``src``: the kernel's grant check looks at ``path``
        src = _split(params, "src" if params.get("src") is not None else "path")
        dst = _split(params, "dst")
        src_shown, dst_shown = _show(src), _show(dst)
        overwrite = p_bool(params, "overwrite", False)
        make = p_bool(params, "parents", False)
        if not src or not dst:
            raise Fail("invalid_params", "cannot move the grant root or onto it")
        sphys = root.locate(src, follow=False)
        dphys = root.locate(dst, follow=False)
        with root.parent(sphys, src_shown) as (sfd, sname), root.parent(dphys, dst_shown, make) as (dfd, dname):
            old = _lstat(sname, sfd)
            if old is None:
                raise Fail("not_found", f"{src_shown!r} does not exist")
            check_links(old, src_shown)
            replaced = _lstat(dname, dfd)
            if replaced is not None and not overwrite:
                raise Fail("exists", f"{dst_shown!r} already exists; pass overwrite: true to replace it")
            if replaced is not None:
                check_links(replaced, dst_shown)
            try:
                os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as e:
                raise _os_fail(e, f"{src_shown} -> {dst_shown}") from None
        return Receipt.ok(src=src_shown, dst=dst_shown, type=_kind(old.st_mode))

    def _mkdir(self, root: _Root, params: Mapping[str, Any], grant: Mapping[str, Any]) -> Receipt:
        parts = _split(params)
        shown = _show(parts)
        make = p_bool(params, "parents", False)
        exist_ok = p_bool(params, "exist_ok", False)
        phys = root.locate(parts, follow=True)
        if not phys:
            if exist_ok:
                return Receipt.ok(path=shown, created=False)
            raise Fail("exists", f"{shown!r} already exists")
        with root.parent(phys, shown, make) as (dfd, name):
            try:
                os.mkdir(name, 0o777, dir_fd=dfd)
            except FileExistsError:
                old = _lstat(name, dfd)
                if exist_ok and old is not None and st_.S_ISDIR(old.st_mode):
                    return Receipt.ok(path=shown, created=False)
                raise Fail("exists", f"{shown!r} already exists") from None
            except OSError as e:
                raise _os_fail(e, shown) from None
        return Receipt.ok(path=shown, created=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)
