"""Does a grant cover an effect? Pure checks, one per capability kind.

A grant covers an effect when its kind equals the effect's ``cap`` (for the
kernel's own effects, the kind ``builtins`` fixes, not the manifest's word), the grant
is open to the emitting workflow, and the kind's check accepts the (already
schema-valid) params. The first grant in name order that covers it wins, so
the choice is deterministic and recorded on the intent. The kernel-side
adapter must enforce the same grant again when it runs the effect (defence in
depth); this check is what makes refusals journaled and replayable.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aos.kernel.world.builtins import builtin_effect
from aos.kernel.world.manifest import EffectDef, GrantDef, Manifest

Check = Callable[[GrantDef, EffectDef, Any], str | None]  # None = allowed, else why not


def _under(path: Any, root: str) -> bool:
    if not isinstance(path, str) or not path:
        return False
    root = posixpath.normpath(root)
    full = posixpath.normpath(posixpath.join(root, path))
    return full == root or full.startswith(root.rstrip("/") + "/")


def _fs(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    if not isinstance(p, dict):
        return "host.fs params must be a record"
    # search and patch effects work on the whole root when no path is given; the
    # adapter confines every path inside a patch itself
    path = p.get("path", ".")
    if not _under(path, g.params["root"]):
        return f"path {path!r} is outside {g.params['root']!r}"
    if e.writes and g.params.get("read_only"):
        return "grant is read-only"
    return None


def _exec(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    if not isinstance(p, dict) or not isinstance(p.get("argv"), list) or not p["argv"]:
        return "host.exec params need a non-empty argv"
    allowed = g.params.get("commands")
    if allowed is not None and p["argv"][0] not in allowed:
        return f"command {p['argv'][0]!r} is not allowed"
    cwd = p.get("cwd")
    if cwd is not None and not _under(cwd, g.params["cwd"]):
        return f"cwd {cwd!r} is outside {g.params['cwd']!r}"
    return None


def _http(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    url = p.get("url") if isinstance(p, dict) else None
    if not isinstance(url, str):
        return "http params need a url"
    parts = urlsplit(url)
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        return "the url has a bad port"
    # an entry is "*", a host (any port) or "host:port" (that port only), as the adapter matches
    allowed = g.params["hosts"]
    if "*" in allowed or host in allowed or (port is not None and f"{host}:{port}" in allowed):
        return None
    return f"host {parts.netloc!r} is not allowed"


def _llm(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    if not isinstance(p, dict) or p.get("provider") not in g.params["providers"]:
        return f"provider {p.get('provider') if isinstance(p, dict) else None!r} is not allowed"
    cap = (g.params.get("budget") or {}).get("max_tokens")
    if cap is not None and not (isinstance(p.get("max_tokens"), int) and p["max_tokens"] <= cap):
        return f"max_tokens must be set and at most {cap}"
    return None


def portal_reaches(worlds: Any, dest: str) -> bool:
    """Whether a portal grant's ``worlds`` name ``dest``, a world of another universe (``U/W``): the
    grant lists it, or its universe as ``U/*``. With no ``worlds`` a grant reaches its own universe only."""
    universe, _, _ = dest.partition("/")
    return isinstance(worlds, (list, tuple)) and (dest in worlds or f"{universe}/*" in worlds)


def _portal(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    worlds = g.params.get("worlds")
    dest = p.get("dest_world") if isinstance(p, dict) else None
    if isinstance(dest, str) and "/" in dest:  # UNIVERSE/WORLD: across universes only where the grant says so
        if not portal_reaches(worlds, dest):
            return f"world {dest!r} is in another universe: the portal grant must name it (or {dest.partition('/')[0]}/*)"
        return None
    if worlds is not None and dest not in worlds:
        return "destination world is not allowed"
    return None


def _browser(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    # only a navigation names a url; the adapter checks every request the page makes and the final url
    if _op(e) != "navigate":
        return None
    from aos.adapters.browser_origins import OriginError, Origins

    try:
        origins = Origins.parse(list(g.params["origins"]))
    except OriginError as exc:
        return str(exc)
    return origins.check_navigation(p.get("url") if isinstance(p, dict) else None)


def _any(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    return None


def _op(e: EffectDef) -> str:
    builtin = builtin_effect(e.name)
    return builtin.kind.split(".", 1)[1] if builtin is not None else ""


def _world_allowed(allowed: Any, target: str) -> bool:
    # "." is the world itself, "*" any world of its universe; the kernel checks again with real ids
    return allowed is None or "*" in allowed or target in allowed


def _target(p: Any, field: str = "world") -> str:
    value = p.get(field) if isinstance(p, dict) else None
    return value if isinstance(value, str) and value else "."


def _governance(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    op = _op(e)
    if op not in g.params["ops"]:
        return f"governance operation {op!r} is not granted"
    if not _world_allowed(g.params["worlds"], _target(p)):
        return f"governance of world {_target(p)!r} is not granted"
    return None


def _inspect(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    if not _world_allowed(g.params.get("worlds"), _target(p)):
        return f"reading world {_target(p)!r} is not granted"
    return None


def _universe(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    op = _op(e)
    if op not in g.params["ops"]:
        return f"universe operation {op!r} is not granted"
    if op == "send" and not _world_allowed(g.params.get("worlds"), _target(p)):
        return f"sending to world {_target(p)!r} is not granted"
    return None


def _workspace(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    allowed = g.params.get("workspaces")
    name = p.get("workspace") if isinstance(p, dict) else None
    if allowed is not None and name not in allowed:
        return f"workspace {name!r} is not granted"
    if _op(e) in ("write", "commit") and g.params.get("read_only"):
        return "grant is read-only"
    return None


def _compile(g: GrantDef, e: EffectDef, p: Any) -> str | None:
    allowed = g.params.get("languages")
    language = p.get("language") if isinstance(p, dict) else None
    if allowed is not None and language not in allowed:
        return f"language {language!r} is not granted"
    return None


CHECKS: dict[str, Check] = {
    "host.fs": _fs,
    "host.exec": _exec,
    "http": _http,
    "llm": _llm,
    "timer": _any,
    "cancel": _any,  # a cell can only cancel its own intents (the kernel matches the origin)
    "blob": _any,
    "portal": _portal,
    "governance": _governance,
    "inspect": _inspect,
    "universe": _universe,
    "workspace": _workspace,
    "compile": _compile,
    "browser": _browser,
}


def find_grant(m: Manifest, workflow: str, effect: EffectDef, params: Any) -> tuple[str | None, str]:
    """Return ``(grant_name, "")`` for the first covering grant, else
    ``(None, reason)``."""
    builtin = builtin_effect(effect.name)
    if builtin is not None:  # the kernel's kind and write flag, whatever a manifest says
        effect = replace(effect, cap=builtin.cap, writes=builtin.writes)
    reasons: list[str] = []
    for name in sorted(m.grants):
        g = m.grants[name]
        if g.cap != effect.cap:
            continue
        if g.workflows is not None and workflow not in g.workflows:
            reasons.append(f"{name}: not granted to {workflow}")
            continue
        why = CHECKS[g.cap](g, effect, params)
        if why is None:
            return name, ""
        reasons.append(f"{name}: {why}")
    if not reasons:
        return None, f"no {effect.cap} grant in the manifest"
    return None, "; ".join(reasons)
