"""The file tools of a coding agent, as sans-IO cores.

``edit`` (search and replace with a tolerant fallback), ``patch`` (the v4a
``apply_patch`` format) and ``search`` (grep and glob over an injected file
walk) do no I/O: they take text and callables and return values or raise a
``ToolError``. Their input comes from a model or a world, so their cost is
bounded: regexes run in RE2 (``regex``), and each takes a ``Deadline``
(``limits``) past which it raises ``ToolTimeout``. ``aos.adapters.host_fs_tools`` runs them against a host
directory under a ``host.fs`` grant.
"""

from .edit import Edit, edit_text
from .errors import (
    EditAmbiguous,
    EditError,
    EditNoMatch,
    PatchConflict,
    PatchError,
    PatchInvalid,
    ToolError,
    ToolTimeout,
)
from .limits import Deadline
from .patch import (
    AddFile,
    DeleteFile,
    Hunk,
    Patch,
    PatchResult,
    UpdateFile,
    apply_patch,
    diff_patch,
    format_patch,
    parse_patch,
    update_text,
)
from .search import GlobResult, GrepMatch, GrepResult, glob, glob_matcher, grep

__all__ = [
    "AddFile",
    "Deadline",
    "DeleteFile",
    "Edit",
    "EditAmbiguous",
    "EditError",
    "EditNoMatch",
    "GlobResult",
    "GrepMatch",
    "GrepResult",
    "Hunk",
    "Patch",
    "PatchConflict",
    "PatchError",
    "PatchInvalid",
    "PatchResult",
    "ToolError",
    "ToolTimeout",
    "UpdateFile",
    "apply_patch",
    "diff_patch",
    "edit_text",
    "format_patch",
    "glob",
    "glob_matcher",
    "grep",
    "parse_patch",
    "update_text",
]
