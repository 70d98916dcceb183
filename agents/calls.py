"""Tool calls as data: parse and validate arguments, map them onto effect
params, and turn receipts into the text the model reads. Pure functions; the
session workflow calls them, and so can tests.

The argument mapping (``ToolSpec.args``) is a template, rendered against the
model's arguments:

- ``{"$arg": "name"}`` is the argument (a dict entry is dropped when it is
  absent), ``{"$arg": "name", "default": v}`` with a default;
- ``{"$path": "name", "default": "."}`` is a path made relative to the
  workspace root (absolute paths under the root are accepted; anything that
  leaves the root is an error result, so no effect is emitted that the grant
  would refuse);
- ``{"$ms": "name", "default": ms, "max": ms}`` is a positive millisecond
  timeout, clamped to the max;
- ``{"$cwd": true}`` is the session's working directory relative to the root
  (dropped at the root; ``{"$cwd": "."}`` gives ``"."`` there);
- ``{"$const": v}`` is ``v`` as is; any other dict, list or scalar is rendered
  recursively.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

_MISSING = object()


class ToolError(Exception):
    """A tool call that ends as an error result without an effect."""


def parse_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments as a dict; raises ``ToolError`` on bad JSON."""
    args = call.get("arguments")
    if isinstance(args, str) or (not args and call.get("raw_arguments")):
        raw = args if isinstance(args, str) and args else call.get("raw_arguments") or "{}"
        try:
            args = json.loads(raw)
        except ValueError as exc:
            raise ToolError(f"invalid JSON arguments for tool '{call.get('name')}': {exc}") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolError(f"invalid JSON arguments for tool '{call.get('name')}': not an object")
    return args


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}


def validate(args: dict[str, Any], schema: dict[str, Any], tool: str) -> None:
    """Check required keys, ``additionalProperties: false``, primitive types
    and enums (the subset of JSON Schema tool definitions use)."""
    props = schema.get("properties") or {}
    for k in schema.get("required") or []:
        if k not in args:
            raise ToolError(f"Invalid arguments for tool: {tool}: missing required argument '{k}'")
    for k, v in args.items():
        if k not in props:
            if schema.get("additionalProperties") is False:
                raise ToolError(f"Invalid arguments for tool: {tool}: unexpected argument '{k}' not allowed by schema")
            continue
        want = props[k].get("type")
        kinds = [want] if isinstance(want, str) else list(want or [])
        ok_types = tuple(t for kind in kinds for t in _TYPES.get(kind, (object,)))
        if kinds and (not isinstance(v, ok_types) or (isinstance(v, bool) and "boolean" not in kinds)):
            raise ToolError(f"Invalid arguments for tool: {tool}: argument '{k}' expected type "
                            f"'{'|'.join(kinds)}' but received '{type(v).__name__}'")
        if "enum" in props[k] and v not in props[k]["enum"]:
            raise ToolError(f"Invalid arguments for tool: {tool}: argument '{k}' must be one of {props[k]['enum']}")


def workspace_path(path: Any, root: str, cwd: str = ".") -> str:
    """A model-given path as a path relative to the workspace root."""
    if not isinstance(path, str) or not path:
        raise ToolError("a path must be non-empty text")
    root = posixpath.normpath(root or "/")
    if posixpath.isabs(path):
        full = posixpath.normpath(path)
        if full != root and not full.startswith(root.rstrip("/") + "/"):
            raise ToolError(f"path {path!r} is outside the workspace {root}")
        rel = posixpath.relpath(full, root)
    else:
        rel = posixpath.normpath(posixpath.join(cwd or ".", path))
    if rel == ".." or rel.startswith("../"):
        raise ToolError(f"path {path!r} is outside the workspace {root}")
    return rel


def render(template: Any, args: dict[str, Any], root: str, cwd: str = ".") -> Any:
    """Effect params from an argument mapping; raises ``ToolError``."""
    out = _render(template, args, root, cwd)
    return None if out is _MISSING else out


def _render(t: Any, args: dict[str, Any], root: str, cwd: str) -> Any:
    if isinstance(t, list):
        return [x for x in (_render(v, args, root, cwd) for v in t) if x is not _MISSING]
    if not isinstance(t, dict):
        return t
    if "$const" in t:
        return t["$const"]
    if "$arg" in t:
        return args.get(t["$arg"], t.get("default", _MISSING))
    if "$path" in t:
        v = args.get(t["$path"], t.get("default", _MISSING))
        return v if v is _MISSING else workspace_path(v, root, cwd)
    if "$ms" in t:
        ms = args.get(t["$ms"], t.get("default", _MISSING))
        if ms is _MISSING:
            return ms
        if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
            raise ToolError(f"'{t['$ms']}' must be a positive integer")
        return min(ms, int(t.get("max", ms)))
    if "$cwd" in t:
        at_root = t["$cwd"] if isinstance(t["$cwd"], str) else _MISSING
        return at_root if cwd in ("", ".") else cwd
    return {k: x for k, x in ((k, _render(v, args, root, cwd)) for k, v in t.items()) if x is not _MISSING}


# --- receipts -> the text the model reads -------------------------------------------------------


def _error_text(payload: Any, status: str) -> str:
    if isinstance(payload, dict):
        code = payload.get("error") or status
        msg = payload.get("message") or ""
        return f"Error: {code}: {msg}".rstrip(": ")
    return f"Error: {status}"


def _read(args: dict[str, Any], p: dict[str, Any]) -> str:
    content = p.get("content", "")
    if isinstance(content, bytes):
        return f"[binary file, {len(content)} bytes]"
    offset = args.get("offset") or 1
    limit = args.get("limit") or 2000
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    start = max(1, int(offset))
    chosen = lines[start - 1:start - 1 + int(limit)]
    text = "\n".join(f"{n} | {line}" for n, line in enumerate(chosen, start))
    if p.get("truncated"):
        text += f"\n[file is {p.get('size')} bytes; only the first part was read]"
    return text


def _exec(args: dict[str, Any], status: str, p: dict[str, Any]) -> str:
    out, err = p.get("stdout", ""), p.get("stderr", "")
    if status == "timeout":
        ms = args.get("timeout_ms")
        err = (err or "") + (f"\n[ERROR: Command timed out after {ms}ms. Partial output is shown above.\n"
                             "You can retry with a longer timeout by setting the timeout_ms parameter.]")
    return (f"exit_code: {p.get('exit_code')}\nduration_ms: {p.get('duration_ms')}\n"
            f"stdout:\n{out}\nstderr:\n{err}")


def _patch(p: dict[str, Any]) -> str:
    lines = [f"A {x}" for x in p.get("added") or []] + [f"M {x}" for x in p.get("updated") or []]
    lines += [f"D {x}" for x in p.get("deleted") or []] + [f"R {a} -> {b}" for a, b in p.get("moved") or []]
    return "Applied patch:\n" + "\n".join(lines)


def _grep(p: dict[str, Any]) -> str:
    found = [f"{m.get('path')}:{m.get('line')}:{m.get('text')}" for m in p.get("matches") or []]
    if not found:
        return "No matches found"
    return "\n".join(found) + ("\n[results truncated]" if p.get("truncated") else "")


def _glob(p: dict[str, Any]) -> str:
    paths = [str(x) for x in p.get("paths") or []]
    if not paths:
        return "No files matched"
    return "\n".join(paths) + ("\n[results truncated]" if p.get("truncated") else "")


def _browser(p: dict[str, Any]) -> str:
    """A browser receipt as the model reads it: where the page is, then the snapshot or the log."""
    lines = [f"{k}: {p[k]}" for k in ("url", "title", "status", "filled") if p.get(k) not in (None, "")]
    if "hash" in p:
        lines.append(f"screenshot: {p['hash']} ({p.get('size')} bytes)")
    for entry in p.get("entries") or []:
        lines.append(json.dumps(entry, sort_keys=True))
    if "entries" in p and not p["entries"]:
        lines.append("(no new log entries)")
    if p.get("dropped"):
        lines.append(f"[{p['dropped']} older entries dropped]")
    if "snapshot" in p:
        lines.append(str(p["snapshot"]) + ("\n[snapshot truncated]" if p.get("truncated") else ""))
    return "\n".join(lines)


def _auto(p: Any) -> str:
    if isinstance(p, str):
        return p
    if isinstance(p, dict):
        for k in ("output", "text", "summary", "message"):
            v = p.get(k)
            if isinstance(v, str):
                return v
    return json.dumps(p, sort_keys=True, default=str)


def format_output(kind: str, args: dict[str, Any], status: str, payload: Any) -> tuple[str, bool]:
    """``(text, is_error)`` for a tool's receipt; ``kind`` is the ToolSpec's
    ``output`` (``read``, ``write``, ``edit``, ``patch``, ``grep``, ``glob``,
    ``exec``, ``browser`` or ``auto``; an unexpected payload falls back to ``auto``)."""
    p = payload if isinstance(payload, dict) else {}
    if kind == "exec" and ("exit_code" in p or status == "timeout"):
        return _exec(args, status, p), status != "ok"
    if status != "ok":
        return _error_text(payload, status), True
    if kind == "read":
        return _read(args, p), False
    if kind == "write":
        return f"Wrote {p.get('size', 0)} bytes to {p.get('path', args.get('file_path'))}", False
    if kind == "edit" and "replacements" in p:
        n = p["replacements"]
        return f"Updated {p.get('path')} ({n} replacement{'' if n == 1 else 's'})", False
    if kind == "patch" and any(k in p for k in ("added", "updated", "deleted", "moved")):
        return _patch(p), False
    if kind == "grep" and "matches" in p:
        return _grep(p), False
    if kind == "glob" and "paths" in p:
        return _glob(p), False
    if kind == "browser" and p:
        return _browser(p), False
    return _auto(payload), False


def signature(name: str, args: Any) -> str:
    """What loop detection compares: the tool name and its canonical arguments."""
    return name + ":" + json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)


def detect_loop(signatures: list[str], window: int) -> bool:
    """True when the last ``window`` calls repeat a pattern of length 1, 2 or 3."""
    if window <= 0 or len(signatures) < window:
        return False
    recent = signatures[-window:]
    for p in (1, 2, 3):
        if window % p:
            continue
        first = recent[:p]
        if all(recent[i:i + p] == first for i in range(p, window, p)):
            return True
    return False
