"""The v4a ``apply_patch`` format: a sans-IO parser, applier and renderer.

How it works. ``parse_patch(text)`` turns patch text into a ``Patch`` of
frozen operations (``AddFile``, ``DeleteFile``, ``UpdateFile`` with ``Hunk``s
and an optional move) or raises ``PatchInvalid`` naming the patch line. It is
lenient the way codex's parser is, because that decides what real models
send: the text is trimmed, a ``<<'EOF'`` heredoc wrapper is dropped, markers
may carry surrounding whitespace, the first hunk of an update may omit its
``@@`` line, and an empty line inside a hunk is empty context. Several
``@@ <line>`` headers may be stacked; each is sought in turn.

``apply_patch(patch, read)`` plans every operation against an in-memory view
layered over ``read(path) -> text | None`` (None: no such file) and returns a
``PatchResult`` with the final text of every touched path (None: delete it);
it never writes, so a caller can commit all of it or nothing. Each hunk's
old lines are sought from a cursor that moves down the file, at decreasing
strictness: exact, ignoring trailing whitespace, with every whitespace
run as one space, then also folding Unicode dashes and quotes. A hunk with ``@@``
context takes the first match after its context line (or at it, for hunks
that repeat that line as context); a hunk without must match exactly once
after the cursor, else ``PatchConflict`` (ambiguous).
Context lines keep the file's own text when a tolerant pass matched. A hunk
with no old lines inserts after its ``@@`` context, or at the end of the
file without one (as codex). Updated files end with a newline, and a file
whose line endings are all CRLF keeps them.

Divergence from codex, on purpose: adding a file that exists, moving onto
one that exists, and updating or deleting a missing one are conflicts.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .errors import PatchConflict, PatchInvalid
from .limits import NEVER, Deadline

BEGIN = "*** Begin Patch"
END = "*** End Patch"
ADD = "*** Add File: "
DELETE = "*** Delete File: "
UPDATE = "*** Update File: "
MOVE = "*** Move to: "
EOF_MARK = "*** End of File"


# --- the model ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hunk:
    """One ``@@`` chunk: ``contexts`` are the ``@@ <line>`` anchors; ``lines`` are
    ``(op, text)`` with op ``" "`` (context), ``"-"`` (removed) or ``"+"`` (added)."""

    contexts: tuple[str, ...] = ()
    lines: tuple[tuple[str, str], ...] = ()
    end_of_file: bool = False

    @property
    def old_lines(self) -> list[str]:
        return [t for op, t in self.lines if op != "+"]

    @property
    def new_lines(self) -> list[str]:
        return [t for op, t in self.lines if op != "-"]


@dataclass(frozen=True, slots=True)
class AddFile:
    path: str
    content: str  # every line ends with "\n"; "" for an empty file


@dataclass(frozen=True, slots=True)
class DeleteFile:
    path: str


@dataclass(frozen=True, slots=True)
class UpdateFile:
    path: str
    hunks: tuple[Hunk, ...] = ()
    move_to: str | None = None


Operation = AddFile | DeleteFile | UpdateFile


@dataclass(frozen=True, slots=True)
class Patch:
    operations: tuple[Operation, ...] = ()

    def paths(self) -> list[str]:
        """Every path the patch names, move targets included, in order."""
        out: list[str] = []
        for op in self.operations:
            out.append(op.path)
            if isinstance(op, UpdateFile) and op.move_to is not None:
                out.append(op.move_to)
        return out


@dataclass(frozen=True, slots=True)
class PatchResult:
    """What applying a patch does. ``changes`` maps every touched path to its
    new text, or None where the file must not exist afterwards."""

    changes: dict[str, str | None] = field(default_factory=dict)
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()  # for a moved file, its new path
    deleted: tuple[str, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()


# --- parsing -----------------------------------------------------------------------------------
_HEREDOC = re.compile(r"""^(?:\S+\s+)?<<\s*(['"]?)(\w+)\1\s*$""")


def parse_patch(text: str) -> Patch:
    """Parse v4a patch text; raises ``PatchInvalid`` with the 1-based patch ``line``."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    first = 1  # patch line number of lines[0], for messages
    if len(lines) >= 4:
        m = _HEREDOC.match(lines[0].strip())
        if m and lines[-1].strip() == m.group(2):
            lines, first = lines[1:-1], 2
    if not lines or lines[0].strip() != BEGIN:
        raise PatchInvalid(f"the first line of the patch must be {BEGIN!r}", line=first)
    if len(lines) < 2 or lines[-1].strip() != END:
        raise PatchInvalid(f"the last line of the patch must be {END!r}", line=first + len(lines) - 1)
    return Patch(tuple(_Parser(lines[1:-1], first + 1).operations()))


class _Parser:
    def __init__(self, lines: list[str], first: int) -> None:
        self.lines = lines
        self.first = first
        self.i = 0

    def where(self) -> int:
        return self.first + self.i

    def fail(
        self, message: str, path: str | None = None, hunk: int | None = None, at: int | None = None
    ) -> PatchInvalid:
        line = self.where() if at is None else at
        return PatchInvalid(f"line {line}: {message}", path=path, hunk=hunk, line=line)

    def operations(self) -> Iterable[Operation]:
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            line = raw.strip()
            if not line:
                self.i += 1
            elif line.startswith(ADD.rstrip()):
                path = self.path(line, ADD)
                self.i += 1
                content = []
                while self.i < len(self.lines) and self.lines[self.i].startswith("+"):
                    content.append(self.lines[self.i][1:] + "\n")
                    self.i += 1
                yield AddFile(path, "".join(content))
            elif line.startswith(DELETE.rstrip()):
                path = self.path(line, DELETE)
                self.i += 1
                yield DeleteFile(path)
            elif line.startswith(UPDATE.rstrip()):
                yield self.update(self.path(line, UPDATE))
            else:
                raise self.fail(
                    f"{raw!r} is not a valid file header; valid ones are '{ADD}<path>', "
                    f"'{DELETE}<path>' and '{UPDATE}<path>'"
                )

    def path(self, line: str, marker: str) -> str:
        path = line[len(marker.rstrip()) :].strip()
        if not path:
            raise self.fail(f"{marker.strip()!r} needs a path")
        return path

    def update(self, path: str) -> UpdateFile:
        self.i += 1
        move_to = None
        if self.i < len(self.lines) and self.lines[self.i].strip().startswith(MOVE.rstrip()):
            move_to = self.path(self.lines[self.i].strip(), MOVE)
            self.i += 1
        hunks: list[Hunk] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if not line.strip():
                self.i += 1
                continue
            if line.startswith("*"):
                break
            hunks.append(self.hunk(path, len(hunks) + 1))
        if not hunks and move_to is None:
            raise self.fail(f"update of {path!r} has no hunks", path=path)
        return UpdateFile(path, tuple(hunks), move_to)

    def hunk(self, path: str, number: int) -> Hunk:
        start = self.where()
        contexts: list[str] = []
        headed = False
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.startswith("@@ ") and line[3:].strip():
                contexts.append(line[3:])
            elif line.rstrip() != "@@":
                break
            headed = True
            self.i += 1
        if not headed and number > 1:
            raise self.fail(
                f"hunk {number} of {path!r} must start with '@@'",
                path=path,
                hunk=number,
            )
        body: list[tuple[str, str]] = []
        eof = False
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.rstrip() == EOF_MARK:
                if not body:
                    raise self.fail(
                        f"hunk {number} of {path!r} has no lines",
                        path=path,
                        hunk=number,
                        at=start,
                    )
                eof = True
                self.i += 1
                break
            op = line[:1]
            if op in (" ", "-", "+"):
                body.append((op, line[1:]))
            elif op == "":
                body.append((" ", ""))
            elif not body:
                raise self.fail(
                    f"unexpected line {line!r} in hunk {number} of {path!r}: every hunk line starts with "
                    "' ' (context), '-' (removed) or '+' (added)",
                    path=path,
                    hunk=number,
                )
            else:
                break
            self.i += 1
        if not body:
            raise self.fail(f"hunk {number} of {path!r} has no lines", path=path, hunk=number, at=start)
        return Hunk(tuple(contexts), tuple(body), eof)


# --- rendering ---------------------------------------------------------------------------------
def format_patch(patch: Patch) -> str:
    """v4a text for ``patch``; ``parse_patch(format_patch(p)) == p``."""
    out = [BEGIN]
    for op in patch.operations:
        if isinstance(op, AddFile):
            out.append(ADD + op.path)
            out.extend("+" + line for line in op.content.split("\n")[:-1])
        elif isinstance(op, DeleteFile):
            out.append(DELETE + op.path)
        else:
            out.append(UPDATE + op.path)
            if op.move_to is not None:
                out.append(MOVE + op.move_to)
            for h in op.hunks:
                out.extend(["@@ " + c for c in h.contexts] or ["@@"])
                out.extend(o + t for o, t in h.lines)
                if h.end_of_file:
                    out.append(EOF_MARK)
    out.append(END)
    return "\n".join(out) + "\n"


def diff_patch(path: str, old: str, new: str, context: int = 3) -> str:
    """A v4a ``Update File`` patch that turns ``old`` into ``new`` (both read as
    newline-terminated lines), with ``context`` lines around each change."""
    import difflib

    a, b = _split_lines(old), _split_lines(new)
    out = [BEGIN, UPDATE + path]
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        out.append("@@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(" " + x for x in a[i1:i2])
                continue
            out.extend("-" + x for x in a[i1:i2])
            out.extend("+" + x for x in b[j1:j2])
        if group[-1][2] == len(a):
            out.append(EOF_MARK)
    out.append(END)
    return "\n".join(out) + "\n"


# --- applying ----------------------------------------------------------------------------------
def norm_path(path: str) -> str:
    """The key a patch path is tracked under: ``./a//b`` and ``a/b`` are one file."""
    return posixpath.normpath(path.strip())


def apply_patch(patch: Patch, read: Callable[[str], str | None], *, deadline: Deadline = NEVER) -> PatchResult:
    """Plan ``patch`` over the files ``read`` returns (None: missing); raises ``PatchConflict``,
    or ``ToolTimeout`` once ``deadline`` passes (placing hunks in a big file is CPU work)."""
    view: dict[str, str | None] = {}

    def current(path: str) -> str | None:
        return view[path] if path in view else read(path)

    added: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    moved: list[tuple[str, str]] = []
    for op in patch.operations:
        path = norm_path(op.path)
        if isinstance(op, AddFile):
            if current(path) is not None:
                raise PatchConflict(
                    f"cannot add {path!r}: it already exists (use '{UPDATE}')",
                    path=path,
                )
            view[path] = op.content
            added.append(path)
        elif isinstance(op, DeleteFile):
            if current(path) is None:
                raise PatchConflict(f"cannot delete {path!r}: no such file", path=path)
            view[path] = None
            deleted.append(path)
        else:
            text = current(path)
            if text is None:
                raise PatchConflict(f"cannot update {path!r}: no such file", path=path)
            new = update_text(text, op.hunks, path, deadline=deadline) if op.hunks else text
            if op.move_to is not None and norm_path(op.move_to) != path:
                dest = norm_path(op.move_to)
                if current(dest) is not None:
                    raise PatchConflict(
                        f"cannot move {path!r} to {dest!r}: the destination exists",
                        path=path,
                    )
                view[path] = None
                view[dest] = new
                moved.append((path, dest))
                if op.hunks:
                    updated.append(dest)
            else:
                view[path] = new
                updated.append(path)
    return PatchResult(view, tuple(added), tuple(updated), tuple(deleted), tuple(moved))


def update_text(text: str, hunks: Sequence[Hunk], path: str = "file", *, deadline: Deadline = NEVER) -> str:
    """Apply ``hunks`` to ``text``; raises ``PatchConflict`` naming ``path`` and the hunk."""
    eol = "\r\n" if "\r\n" in text and text.count("\r\n") == text.count("\n") else "\n"
    lines = _split_lines(text.replace("\r\n", "\n") if eol == "\r\n" else text)
    cursor = 0
    edits: list[tuple[int, int, list[str]]] = []  # (start, old length, new lines)
    for number, h in enumerate(hunks, 1):
        anchor = None  # index of the last '@@' context line
        for ctx in h.contexts:
            found = _seek(lines, [ctx], cursor, eof=False, unique=False, deadline=deadline)
            if found is None:
                raise PatchConflict(
                    f"{path}: hunk {number}: context line {ctx.strip()!r} not found", path=path, hunk=number
                )
            anchor = found[0]
            cursor = anchor + 1
        body = list(h.lines)
        if not h.old_lines:
            at = cursor if h.contexts else len(lines)
            edits.append((at, 0, h.new_lines))
            continue
        found = _place(lines, h.old_lines, cursor, anchor, h.end_of_file, deadline)
        while found is None and body and body[-1] == (" ", ""):  # blank lines at a hunk's end: often separators
            body.pop()
            trimmed = [t for op, t in body if op != "+"]
            found = _place(lines, trimmed, cursor, anchor, h.end_of_file, deadline) if trimmed else None
        if found is None:
            old = "\n".join(h.old_lines)
            raise PatchConflict(
                f"{path}: hunk {number}: expected lines not found:\n{old}",
                path=path,
                hunk=number,
            )
        start, count = found
        if count > 1:
            raise PatchConflict(
                f"{path}: hunk {number}: the expected lines occur {count} times; add an '@@ <line>' "
                "context header or more context lines to say which",
                path=path,
                hunk=number,
            )
        # context lines keep the file's own text (it may differ in whitespace from the patch)
        new: list[str] = []
        k = start
        for op, t in body:
            if op == " ":
                new.append(lines[k])
            elif op == "+":
                new.append(t)
            if op != "+":
                k += 1
        n_old = k - start
        edits.append((start, n_old, new))
        cursor = start + n_old
    # back to front; of two edits at one place the later goes first, so the earlier ends up above it
    for _, (start, n_old, new) in sorted(enumerate(edits), key=lambda e: (e[1][0], e[0]), reverse=True):
        lines[start : start + n_old] = new
    return eol.join(lines) + eol if lines else ""


def _place(
    lines: list[str], old: list[str], cursor: int, anchor: int | None, eof: bool, deadline: Deadline = NEVER
) -> tuple[int, int] | None:
    """Where a hunk's old lines go: after the cursor (unique unless an '@@' anchor
    placed the hunk), else from the anchor line itself, for hunks that repeat it."""
    hit = _seek(lines, old, cursor, eof, unique=anchor is None, deadline=deadline)
    if hit is None and anchor is not None:
        hit = _seek(lines, old, anchor, eof, unique=False, deadline=deadline)
    return hit


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_SINGLE = dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u02bc"), "'")
_DOUBLE = dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f"), '"')
_FOLD = {**_DASHES, **_SINGLE, **_DOUBLE}
_WS = re.compile(r"\s+")


def _ws(s: str) -> str:
    return _WS.sub(" ", s).strip()


_PASSES: tuple[Callable[[str], str], ...] = (
    lambda s: s,
    str.rstrip,
    _ws,
    lambda s: _ws(s.translate(_FOLD)),
)


def _seek(
    lines: list[str], want: list[str], start: int, eof: bool, unique: bool, deadline: Deadline = NEVER
) -> tuple[int, int] | None:
    """``(index, matches)`` of ``want`` in ``lines`` at or after ``start``, at the
    strictest pass that finds it (an end-of-file hunk tries the end first);
    ``matches`` counts the places after ``start`` when ``unique``, else is 1."""
    n = len(want)
    last = len(lines) - n
    if n == 0 or last < start:
        return None
    for norm in _PASSES:
        pat = [norm(w) for w in want]
        if eof and [norm(x) for x in lines[last:]] == pat:
            return last, 1
        hits = []
        for i in range(start, last + 1):
            deadline.check()  # each try can cost len(want) comparisons
            if _eq(lines, i, pat, norm):
                hits.append(i)
        if hits:
            return hits[0], (len(hits) if unique else 1)
    return None


def _eq(lines: list[str], i: int, pat: list[str], norm: Callable[[str], str]) -> bool:
    for j, p in enumerate(pat):
        if norm(lines[i + j]) != p:
            return False
    return True
