"""Errors of the file-tool cores (edit, apply_patch, grep/glob).

Each carries ``reason``, the snake_case code an adapter puts in a receipt's
``error`` (``patch_invalid``, ``patch_conflict``, ``no_match``, ``ambiguous``,
``invalid_params``), and the patch errors also name the ``path`` and the
1-based ``hunk`` that failed when there is one.
"""

from __future__ import annotations

from aos.errors import AosError


class ToolError(AosError):
    """A file tool refused its input; ``reason`` is the receipt error code."""

    code = "ToolError"
    reason = "invalid_params"


class PatchError(ToolError):
    """An apply_patch failure. ``path`` and ``hunk`` (1-based) say where, when known."""

    code = "PatchError"
    reason = "patch_invalid"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        hunk: int | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.hunk = hunk
        self.line = line


class PatchInvalid(PatchError):
    """The patch text is not valid v4a (raised by ``parse_patch``); ``line`` is the 1-based patch line."""

    code = "PatchInvalid"
    reason = "patch_invalid"


class PatchConflict(PatchError):
    """The patch does not fit the files (raised by ``apply_patch``): context not found or
    ambiguous, add of an existing file, update/delete of a missing one, move onto an existing file."""

    code = "PatchConflict"
    reason = "patch_conflict"


class EditError(ToolError):
    code = "EditError"
    reason = "invalid_params"


class EditNoMatch(EditError):
    """``old_string`` was found neither exactly nor by the tolerant match."""

    code = "EditNoMatch"
    reason = "no_match"


class EditAmbiguous(EditError):
    """``old_string`` matched ``count`` places and ``replace_all`` was not set."""

    code = "EditAmbiguous"
    reason = "ambiguous"

    def __init__(self, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.count = count


class ToolTimeout(ToolError):
    """The work ran past its ``Deadline`` (``aos.agents.tools.limits``) and was abandoned; nothing was changed."""

    code = "ToolTimeout"
    reason = "timeout"
