"""aos-shell commands for governance and the Demiurge, inside a world.

``propose``, ``shadow``, ``approve``, ``reject``, ``apply``, ``rollback``,
``history`` and ``manifest`` are the steps of ``aos world propose|...`` on the
world you are in (the same output); ``demiurge TEXT`` asks that world's
Demiurge (a world of its own, ``dm-<world>``, made on first use and kept, so
a conversation goes on) and streams its turn like ``agent chat``.
Registered by ``shell/commands.py``.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from aos.cli_governance import governance_lines
from aos.errors import InvalidArgument
from aos.kernel.host import jsonvalue
from aos.shell.commands import Context, Output, command
from aos.shell.parse import Command, Grammar
from aos.shell.render import Line


async def _world(ctx: Context) -> Any:
    if not ctx.session.world_id:
        raise InvalidArgument("enter a world first: `world ID` (see `worlds`)")
    return await ctx.session.world()


def _lines(ctx: Context, result: dict[str, Any], warn: bool = False) -> Output:
    return [Line(text, "warn" if warn and i == 0 else "") for i, text in
            enumerate(governance_lines(ctx.session.world_id, result))]


@command("propose", "propose [--reason TEXT] PATCH", "propose a change to this world's manifest (a patch)",
         args=(1, 1), grammar=Grammar(valued=frozenset({"reason"}), rest_at=0),
         detail='PATCH is the rest of the line as JSON, or a file: propose {"ops": [{"op": "remove", "section": '
                '"routing", "value": {"event": "demo/E@1", "workflow": "demo/w@1"}}]}. Then shadow, approve, apply.')
async def _propose(ctx: Context, cmd: Command) -> Output:
    text = cmd.args[0]
    if not text.lstrip().startswith("{"):
        path = os.path.expanduser(text)
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the patch {path}: {exc.strerror}") from None
    patch = jsonvalue.loads(text, "the patch")
    result = await (await _world(ctx)).propose(patch, cmd.options.get("reason", ""))
    return _lines(ctx, {"proposed": result})


@command("shadow", "shadow PROPOSAL [--sample N]", "run a proposal on a fork against this world's recent events",
         args=(1, 1), grammar=Grammar(valued=frozenset({"sample"})))
async def _shadow(ctx: Context, cmd: Command) -> Output:
    try:
        sample = int(cmd.options.get("sample", "0"))
    except ValueError:
        raise InvalidArgument("--sample wants a number") from None
    report = await (await _world(ctx)).shadow(cmd.args[0], None, sample)
    return _lines(ctx, {"shadow": report}, warn=not report["ok"])


@command("approve", "approve PROPOSAL [--reason TEXT]", "approve a proposal whose shadow run found no problem",
         args=(1, 1), grammar=Grammar(valued=frozenset({"reason"})))
async def _approve(ctx: Context, cmd: Command) -> Output:
    result = await (await _world(ctx)).approve(cmd.args[0], cmd.options.get("reason", ""))
    return _lines(ctx, {"decided": result})


@command("reject", "reject PROPOSAL [--reason TEXT]", "reject a proposal", args=(1, 1),
         grammar=Grammar(valued=frozenset({"reason"})))
async def _reject(ctx: Context, cmd: Command) -> Output:
    result = await (await _world(ctx)).reject(cmd.args[0], cmd.options.get("reason", ""))
    return _lines(ctx, {"decided": result})


@command("apply", "apply PROPOSAL", "switch this world to an approved proposal's manifest", args=(1, 1))
async def _apply(ctx: Context, cmd: Command) -> Output:
    return _lines(ctx, {"switched": await (await _world(ctx)).apply(cmd.args[0])})


@command("rollback", "rollback [MANIFEST] [--reason TEXT]", "switch this world back to an earlier manifest",
         args=(0, 1), grammar=Grammar(valued=frozenset({"reason"})))
async def _rollback(ctx: Context, cmd: Command) -> Output:
    manifest = cmd.args[0] if cmd.args else ""
    return _lines(ctx, {"switched": await (await _world(ctx)).rollback(manifest, cmd.options.get("reason", ""))})


@command("history", "history", "this world's proposals and manifest changes")
async def _history(ctx: Context, cmd: Command) -> Output:
    return _lines(ctx, {"history": await (await _world(ctx)).governance()})


@command("manifest", "manifest", "the manifest this world runs now")
async def _manifest(ctx: Context, cmd: Command) -> Output:
    from aos.shell.render import Json

    found = await (await _world(ctx)).manifest()
    return [Line(f"manifest {found['hash']}", "dim"), Json(found["manifest"], "manifest")]


def demiurge_id(world_id: str, kinds: tuple[str, ...]) -> str:
    """The Demiurge world of ``world_id`` with these grants (names stay within the 100-character limit)."""
    name = "dm-" + world_id + "".join("-" + k for k in kinds)
    if len(name) <= 100:
        return name
    return "dm-" + hashlib.sha256(name.encode()).hexdigest()[:16]


@command("demiurge", "demiurge [--grant KINDS] TEXT", "ask this world's Demiurge, or have it change the world",
         args=(1, 1), grammar=Grammar(valued=frozenset({"grant", "provider"}), rest_at=0), streams=True,
         detail="--grant governance,workspace,compile,universe (or all): what it may do besides reading. The "
                "kernel needs the provider's key in its environment. Ctrl-C interrupts the turn (and closes "
                "that Demiurge's session).")
async def _demiurge(ctx: Context, cmd: Command) -> Output:
    from aos.agents import COMMAND
    from aos.agents.demiurge import build_demiurge
    from aos.cli_demiurge import grant_kinds
    from aos.shell.commands import _turn

    await _world(ctx)
    target = ctx.session.world_id
    kinds = grant_kinds([cmd.options["grant"]] if "grant" in cmd.options else [])
    provider = cmd.options.get("provider", "anthropic")
    worlds = await ctx.session.worlds()
    world_id = demiurge_id(target, kinds)
    if not any(w["worldId"] == world_id for w in await worlds.list()):
        doc, start = build_demiurge(target, None, universe=ctx.session.universe, provider=provider, kinds=kinds)
        dm, _ = await worlds.create(doc, {}, world_id, f"demiurge of {target}")
        await dm.send(COMMAND, start)
        ctx.emit([Line(f"made {world_id}, the Demiurge of {target} (grants: {', '.join(kinds) or 'none: it reads'})",
                       "dim")])
    dm = await worlds.open(world_id)
    await _turn(ctx, dm, cmd.args[0])
    return []
