"""The kernel's built-in effects: which capability kind covers each, and which write.

A manifest declares the effects its workflows may emit, each with a ``cap``
(the grant kind that admits it). For the kernel's own effects that choice is
not the manifest's to make: ``sys/llm.generate@1`` declared under ``timer``
would be admitted by a timer grant, and the grant that limits it (providers,
token budget) would never be checked. So the kernel fixes, once, here:

- the kind of every built-in effect (the adapter that runs it) and the one
  capability kind whose grant must admit it;
- whether it writes (a read-only ``host.fs`` grant refuses writes, so a
  manifest must not be able to call ``host.fs.write`` a read);
- that built-in kinds live in the ``sys/`` namespace only: the dispatcher
  picks adapters by kind, so ``evil/host.exec@1`` must not reach the exec
  adapter under some other grant.

``parse_manifest`` refuses a manifest that disagrees; admission and the
dispatcher look the kind up here rather than trusting the manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aos.kernel.world.errors import ManifestError


@dataclass(frozen=True, slots=True)
class BuiltinEffect:
    kind: str  # the adapter's name for it: ``host.fs.read``
    cap: str  # the grant kind that admits it
    writes: bool = False


BUILTIN_EFFECTS: dict[str, BuiltinEffect] = {
    e.kind: e
    for e in (
        BuiltinEffect("timer.set", "timer"),
        BuiltinEffect("blob.put", "blob"),
        BuiltinEffect("blob.get", "blob"),
        BuiltinEffect("http.request", "http"),
        BuiltinEffect("llm.generate", "llm"),
        BuiltinEffect("portal.send", "portal"),
        BuiltinEffect("effect.cancel", "cancel"),
        BuiltinEffect("host.exec", "host.exec"),
        BuiltinEffect("host.fs.read", "host.fs"),
        BuiltinEffect("host.fs.list", "host.fs"),
        BuiltinEffect("host.fs.stat", "host.fs"),
        BuiltinEffect("host.fs.grep", "host.fs"),
        BuiltinEffect("host.fs.glob", "host.fs"),
        BuiltinEffect("host.fs.write", "host.fs", writes=True),
        BuiltinEffect("host.fs.delete", "host.fs", writes=True),
        BuiltinEffect("host.fs.move", "host.fs", writes=True),
        BuiltinEffect("host.fs.mkdir", "host.fs", writes=True),
        BuiltinEffect("host.fs.edit", "host.fs", writes=True),
        BuiltinEffect("host.fs.apply_patch", "host.fs", writes=True),
        # governance of worlds (kernel/world/governance.py), reading worlds, making and driving them
        *(BuiltinEffect(f"governance.{op}", "governance")
          for op in ("propose", "shadow", "approve", "reject", "apply", "rollback", "history")),
        BuiltinEffect("world.inspect", "inspect"),
        *(BuiltinEffect(f"universe.{op}", "universe") for op in ("create", "send", "list")),
        # versioned source trees in CAS (kernel/world/workspace.py) and the sandboxed compiler (adapters/compile.py)
        # (a read-only workspace grant refuses write and commit by name: `writes` is host.fs's flag)
        *(BuiltinEffect(f"workspace.{op}", "workspace") for op in ("read", "list", "diff", "log", "write", "commit")),
        BuiltinEffect("module.compile", "compile"),
        # a headless browser confined to the grant's origins (adapters/browser.py)
        *(BuiltinEffect(f"browser.{op}", "browser")
          for op in ("navigate", "snapshot", "click", "type", "fill", "screenshot", "logs")),
    )
}

# an effect name: optional ``namespace/``, a dotted kind, ``@version``
_EFFECT_NAME = re.compile(r"(?:([A-Za-z0-9_.\-]+)/)?([A-Za-z0-9_.\-]+)@(\d+)")


def split_effect_name(name: str) -> tuple[str | None, str, int] | None:
    """``sys/host.fs.read@1`` -> ``("sys", "host.fs.read", 1)``; None if not of that form."""
    match = _EFFECT_NAME.fullmatch(name)
    if match is None:
        return None
    return match.group(1), match.group(2), int(match.group(3))


def builtin_effect(name: str) -> BuiltinEffect | None:
    """The built-in effect a (valid) manifest effect name denotes, or None for a
    user-defined effect, which no kernel adapter runs."""
    parts = split_effect_name(name)
    if parts is None or parts[0] != "sys":
        return None
    return BUILTIN_EFFECTS.get(parts[1])


def check_effect_declaration(name: str, cap: str, writes: bool | None, path: str) -> bool:
    """Refuse a declaration that contradicts the kernel; return the ``writes``
    flag to record (the kernel's, for a built-in). Raises ``ManifestError``."""
    parts = split_effect_name(name)
    if parts is None:
        raise ManifestError(path, "effect names look like namespace/kind@version, e.g. sys/timer.set@1")
    namespace, kind, _ = parts
    builtin = BUILTIN_EFFECTS.get(kind)
    if namespace != "sys":
        if namespace is None or builtin is not None:
            # the kernel routes effects by kind: a built-in kind outside sys/ would reach its adapter
            shown = f"sys/{kind}@{parts[2]}" if builtin is not None else f"yourapp/{kind}@{parts[2]}"
            raise ManifestError(path, f"effect {name!r} needs a namespace of its own; "
                                      f"the kernel's effects are in sys/ (did you mean {shown!r}?)")
        return bool(writes)
    if builtin is None:
        raise ManifestError(path, f"{name!r} is not a kernel effect; known: "
                                  + ", ".join(f"sys/{k}@1" for k in sorted(BUILTIN_EFFECTS)))
    if cap != builtin.cap:
        raise ManifestError(f"{path}.cap", f"{name} is covered by a {builtin.cap!r} grant, not {cap!r}")
    if writes is not None and writes != builtin.writes:
        raise ManifestError(f"{path}.writes", f"{name} {'writes' if builtin.writes else 'does not write'}; "
                                              f"leave 'writes' out or set it to {str(builtin.writes).lower()}")
    return builtin.writes
