"""The small type language of world schemas, and value checking at the door.

A type is JSON:

- a primitive name: ``"bool"``, ``"int"`` (i64), ``"nat"`` (u64), ``"text"``,
  ``"bytes"``, ``"hash"`` (text ``sha256:<64 hex>``), ``"unit"`` (null),
  ``"any"`` (any CBOR value; use sparingly, it checks nothing), ``"secret"``
  (text naming a secret the manifest declares; the adapter resolves it at
  dispatch, so the value itself is never journaled);
- ``{"record": {field: type}}``: a map with exactly these text keys; a field
  whose type is an option may be absent;
- ``{"option": type}``: null or the type;
- ``{"list": type}``, ``{"map": type}`` (text keys), ``{"enum": [text...]}``;
- ``{"variant": {arm: type}}``: a one-key map ``{arm: payload}``;
- ``{"ref": "ns/Name@1"}``: another schema of the same manifest (no cycles).

This mirrors the AIR v2 type AST in spirit (record/variant/list/map/option/
ref) with fewer primitives; values travel as plain CBOR so two spellings of
the same value cannot exist (``dict`` order is irrelevant once encoded).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from aos.kernel.world.cbor import is_hash_text
from aos.kernel.world.errors import SchemaViolation

PRIMITIVES = frozenset({"bool", "int", "nat", "text", "bytes", "hash", "unit", "any", "secret"})
COMPOSITES = frozenset({"record", "option", "list", "map", "enum", "variant", "ref"})

_I64 = (-(1 << 63), (1 << 63) - 1)
_U64 = (0, (1 << 64) - 1)


def check_type(t: Any, path: str, known: Mapping[str, Any] | None = None) -> None:
    """Raise ``SchemaViolation`` (path = where in the manifest) if ``t`` is not
    a well-formed type; ``known`` lists names a ``ref`` may point to."""
    if isinstance(t, str):
        if t not in PRIMITIVES:
            raise SchemaViolation(path, f"unknown primitive type {t!r}")
        return
    if not isinstance(t, dict) or len(t) != 1:
        raise SchemaViolation(path, "a type is a primitive name or a one-key object")
    (kind, arg), = t.items()
    if kind not in COMPOSITES:
        raise SchemaViolation(path, f"unknown type constructor {kind!r}")
    sub = f"{path}.{kind}"
    if kind in ("record", "variant"):
        if not isinstance(arg, dict):
            raise SchemaViolation(sub, "expects an object of field types")
        for name, ft in arg.items():
            if not isinstance(name, str) or not name:
                raise SchemaViolation(sub, "field names are non-empty text")
            check_type(ft, f"{sub}.{name}", known)
    elif kind in ("option", "list", "map"):
        check_type(arg, sub, known)
    elif kind == "enum":
        if not isinstance(arg, list) or not arg or not all(isinstance(a, str) for a in arg):
            raise SchemaViolation(sub, "expects a non-empty list of text")
        if len(set(arg)) != len(arg):
            raise SchemaViolation(sub, "duplicate enum member")
    else:  # ref
        if not isinstance(arg, str):
            raise SchemaViolation(sub, "expects a schema name")
        if known is not None and arg not in known:
            raise SchemaViolation(sub, f"unknown schema {arg!r}")


def refs_of(t: Any) -> set[str]:
    """Names a type refers to (for cycle detection)."""
    if isinstance(t, str):
        return set()
    (kind, arg), = t.items()
    if kind == "ref":
        return {arg}
    if kind in ("record", "variant"):
        out: set[str] = set()
        for ft in arg.values():
            out |= refs_of(ft)
        return out
    if kind in ("option", "list", "map"):
        return refs_of(arg)
    return set()


def validate(value: Any, t: Any, schemas: Mapping[str, Any], path: str = "$",
             secrets: Collection[str] = ()) -> None:
    """Raise ``SchemaViolation`` naming the path of the first part of ``value``
    that does not match type ``t``; ``schemas`` resolves refs, ``secrets`` are
    the names a ``secret`` may take."""
    if isinstance(t, str):
        if t == "secret" and value not in secrets:
            raise SchemaViolation(path, f"{value!r} is not a declared secret")
        _prim(value, t, path)
        return
    (kind, arg), = t.items()
    if kind == "ref":
        validate(value, schemas[arg], schemas, path, secrets)
    elif kind == "option":
        if value is not None:
            validate(value, arg, schemas, path, secrets)
    elif kind == "list":
        if not isinstance(value, (list, tuple)):
            raise SchemaViolation(path, f"expected list, got {_tn(value)}")
        for i, item in enumerate(value):
            validate(item, arg, schemas, f"{path}[{i}]", secrets)
    elif kind == "map":
        if not isinstance(value, dict):
            raise SchemaViolation(path, f"expected map, got {_tn(value)}")
        for k, v in value.items():
            if not isinstance(k, str):
                raise SchemaViolation(path, "map keys must be text")
            validate(v, arg, schemas, f"{path}.{k}", secrets)
    elif kind == "enum":
        if value not in arg or not isinstance(value, str):
            raise SchemaViolation(path, f"expected one of {arg}, got {value!r}")
    elif kind == "record":
        if not isinstance(value, dict):
            raise SchemaViolation(path, f"expected record, got {_tn(value)}")
        for k in value:
            if k not in arg:
                raise SchemaViolation(f"{path}.{k}", "unexpected field")
        for name, ft in arg.items():
            if name in value:
                validate(value[name], ft, schemas, f"{path}.{name}", secrets)
            elif not _optional(ft, schemas):
                raise SchemaViolation(f"{path}.{name}", "missing field")
    elif kind == "variant":
        if not isinstance(value, dict) or len(value) != 1:
            raise SchemaViolation(path, "expected a one-key variant object")
        (arm, payload), = value.items()
        if arm not in arg:
            raise SchemaViolation(f"{path}.{arm}", "unknown variant arm")
        validate(payload, arg[arm], schemas, f"{path}.{arm}", secrets)


def _optional(t: Any, schemas: Mapping[str, Any]) -> bool:
    while isinstance(t, dict) and "ref" in t:
        t = schemas[t["ref"]]
    return isinstance(t, dict) and "option" in t or t in ("unit", "any")


def _prim(value: Any, t: str, path: str) -> None:
    ok: bool
    if t == "any":
        return
    if t == "bool":
        ok = isinstance(value, bool)
    elif t in ("int", "nat"):
        lo, hi = _I64 if t == "int" else _U64
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    elif t in ("text", "secret"):
        ok = isinstance(value, str)
    elif t == "bytes":
        ok = isinstance(value, (bytes, bytearray))
    elif t == "hash":
        ok = is_hash_text(value)
    else:  # unit
        ok = value is None
    if not ok:
        if t in ("int", "nat") and isinstance(value, int) and not isinstance(value, bool):
            lo, hi = _I64 if t == "int" else _U64
            raise SchemaViolation(path, f"{_short(value)} is out of range for {t} ({lo} to {hi})")
        raise SchemaViolation(path, f"expected {t}, got {_tn(value)} {_short(value)}")


def _tn(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."
