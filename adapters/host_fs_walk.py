"""The file walk behind ``host.fs.grep`` and ``host.fs.glob``: bounded, fd-based.

The tree below a grant root is the world's to shape, so the walk must stay
cheap whatever it finds there. It never follows a symlink (each directory is
opened from its parent's fd with ``O_NOFOLLOW``), skips ``.git``, and keeps
at most one open fd per level (a stack, not recursion: ``os.fwalk`` recurses
once per level and opens every level at once, so a tree 1,000 levels deep
raised ``RecursionError`` out of the adapter). It stops, and says it was cut,
after ``MAX_WALK_FILES`` files, ``MAX_WALK_ENTRIES`` directory entries or
``MAX_WALK_DEPTH`` levels, and checks the deadline once per directory.
Directories are visited in sorted order and files listed sorted, so where it
stops does not depend on the order the file system lists them.
"""

from __future__ import annotations

import os
import stat as st_
from typing import NamedTuple

from aos.agents.tools.limits import Deadline

from ._common import Fail
from .host_fs import _lstat, _os_fail, _Root, _show

MAX_WALK_FILES = 200_000  # regular files listed before the walk stops (cut)
MAX_WALK_ENTRIES = 1_000_000  # directory entries of any kind looked at before it stops (cut)
MAX_WALK_DEPTH = 64  # directories deeper than this below the start are not entered (cut)
SKIP_DIRS = frozenset({".git"})
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Walk(NamedTuple):
    base: str  # root-relative path of the directory the files are relative to
    files: list[str]
    cut: bool  # a limit stopped the walk early


def walk(root: _Root, parts: list[str], deadline: Deadline, dir_only: bool = False) -> Walk:
    """The regular files below the directory ``parts``. A file ``parts`` yields just
    itself (relative to its parent), unless ``dir_only`` (then ``not_a_directory``)."""
    shown = _show(parts)
    phys = root.locate(parts, follow=True)
    if phys:
        parent = root.open_dir(phys[:-1], shown)
        try:
            info = _lstat(phys[-1], parent)
        finally:
            os.close(parent)
        if info is None:
            raise Fail("not_found", f"{shown!r} does not exist")
        if not st_.S_ISDIR(info.st_mode):
            if dir_only:
                raise Fail("not_a_directory", f"{shown!r} is not a directory")
            return Walk("/".join(phys[:-1]), [phys[-1]], False)
    top = root.open_dir(phys, shown)
    w = _Walker(deadline)
    try:
        subdirs = w.scan(top, "")
    except OSError as e:
        os.close(top)
        raise _os_fail(e, shown) from None
    stack: list[tuple[int, str, list[str]]] = [(top, "", subdirs)]  # (fd, rel, subdirs left, reversed)
    try:
        while stack and not w.full():
            fd, rel, pending = stack[-1]
            if not pending:
                os.close(fd)
                stack.pop()
                continue
            name = pending.pop()
            if len(stack) > MAX_WALK_DEPTH:
                w.cut = True
                continue
            try:
                child = os.open(name, _DIR, dir_fd=fd)
            except OSError:  # vanished, swapped for a symlink or a file, or unreadable: skip it
                continue
            crel = f"{rel}/{name}" if rel else name
            try:
                sub = w.scan(child, crel)
            except OSError:
                os.close(child)
                continue
            stack.append((child, crel, sub))
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return Walk("/".join(phys), w.files, w.cut or any(pending for _, _, pending in stack))


class _Walker:
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.files: list[str] = []
        self.entries = 0
        self.cut = False

    def full(self) -> bool:
        return len(self.files) >= MAX_WALK_FILES or self.entries >= MAX_WALK_ENTRIES

    def scan(self, fd: int, rel: str) -> list[str]:
        """List one directory: its regular files go to ``files``; returns its
        subdirectories in reverse sorted order (popped from the end)."""
        self.deadline.check()
        names, dirs = [], []
        with os.scandir(fd) as it:
            for entry in it:
                self.entries += 1
                if self.entries > MAX_WALK_ENTRIES:
                    self.cut = True
                    break
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS:
                        dirs.append(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    names.append(entry.name)
        room = MAX_WALK_FILES - len(self.files)
        names.sort()
        if len(names) > room:
            names, self.cut = names[:room], True
        self.files.extend(f"{rel}/{n}" if rel else n for n in names)
        dirs.sort(reverse=True)
        return dirs
