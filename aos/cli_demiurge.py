"""``aos demiurge WORLD "question or task"``: the Demiurge, headless.

It creates a Demiurge world for WORLD in the same universe (``agents/demiurge.py``:
an agent session whose tools are kernel effects under its grants), sends the
task, prints the session's events live (``--json``: one JSON object per
line) and exits 0 when the task completed, 1 otherwise; Ctrl-C or SIGTERM
aborts the session first (exit 130, 143), as ``aos agent run`` does.

Without ``--grant`` the Demiurge can only read WORLD. ``--grant governance``
lets it propose, shadow, approve, apply and roll back manifest changes;
``workspace`` and ``compile`` let it write module sources and compile them;
``universe`` lets it create worlds and send them events; ``all`` is all four.

The kernel runs the model calls, so it needs the provider's key and (for a
stand-in) base URL in *its* environment. ``--twin`` runs offline instead: a
kernel of its own (data in ``$AOS_DEMIURGE_DATA`` or
``~/.local/share/aos/demiurge``) pointed at a provider twin on 127.0.0.1
whose scripted model reads the world's overview and history and reports
them; ``--bundle DIR`` creates WORLD there from a bundle the first time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from typing import Any

from aos.errors import AosError, InvalidArgument

ENDS = {"processing_end", "session_end"}


def add_parser(sub: Any) -> None:
    from aos.agents.demiurge import GRANT_KINDS

    d = sub.add_parser("demiurge", help="ask the Demiurge about a world, or have it change or extend it",
                       description="Run the Demiurge on WORLD until the task is done. Without --grant it can only "
                                   "read the world.",
                       epilog="The kernel needs the provider's API key in its environment (or try --twin). "
                              "Exit status: 0 completed, 1 not (error, turn limit), 130/143 interrupted.")
    d.add_argument("world")
    d.add_argument("task")
    d.add_argument("--grant", action="append", default=[], metavar="KIND",
                   help=f"give it a grant: {', '.join(GRANT_KINDS)} or all (repeat, or separate with commas)")
    d.add_argument("--provider", default="anthropic", choices=("openai", "anthropic", "gemini"))
    d.add_argument("--model", default=None)
    d.add_argument("--max-turns", type=int, default=None)
    d.add_argument("--id", default="", help="the Demiurge world's id (default: generated)")
    d.add_argument("--twin", action="store_true",
                   help="offline: a kernel of its own and a scripted stand-in for the model (no API key)")
    d.add_argument("--bundle", default=None, metavar="DIR",
                   help="with --twin: create WORLD from this bundle if the offline kernel has no such world")


def grant_kinds(values: list[str]) -> tuple[str, ...]:
    from aos.agents.demiurge import GRANT_KINDS

    kinds: set[str] = set()
    for value in values:
        for kind in (v.strip() for v in value.split(",") if v.strip()):
            if kind == "all":
                kinds.update(GRANT_KINDS)
            elif kind not in GRANT_KINDS:
                raise InvalidArgument(f"--grant {kind}: one of {', '.join(GRANT_KINDS)} or all")
            else:
                kinds.add(kind)
    return tuple(sorted(kinds))


async def run_demiurge(args: argparse.Namespace, conn: Any, worlds: Any, universe: str,
                       kinds: tuple[str, ...]) -> int:
    """Create the Demiurge world, run the task, print the events; the exit status."""
    from aos.agents import COMMAND, Limits, transcript
    from aos.agents.demiurge import build_demiurge
    from aos.cli_agent import Summary, _Abort, render
    from aos.cli_live import LiveView, OutputClosed
    from aos.kernel.world.records import record_from_value

    target = await worlds.open(args.world)
    await target.describe()  # UnknownWorld (or a quarantine) now, before anything is made
    limits = Limits(max_turns=args.max_turns, max_tool_rounds_per_input=60) if args.max_turns else None
    doc, start = build_demiurge(args.world, args.task, universe=universe, provider=args.provider, model=args.model,
                                kinds=kinds, limits=limits)
    world_id = args.id or time.strftime("dm-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    world, _ = await worlds.create(doc, {}, world_id, f"demiurge of {args.world}")
    model = start["config"].get("model") or ""
    if not args.json:
        held = ", ".join(kinds) or "none: it can only read"
        twin = " (offline twin)" if args.twin else ""
        print(f"demiurge {world_id} for world {args.world}: {args.provider} {model}{twin}; grants: {held}",
              flush=True)
    summary = Summary()
    view = LiveView(conn)
    aborting = _Abort()
    answer: list[str] = []

    async def on_record(seq: int, value: dict[str, Any]) -> None:
        value.pop("at", None)
        record = record_from_value(value)
        aborting.note(record)
        for event in transcript([record]):
            summary.add(event)
            if event.session == "main" and event.kind == "assistant_text_end" and event.data.get("text"):
                answer.append(str(event.data["text"]))
            view.print(render(event, args.json))
            if event.session == "main" and event.kind in ENDS and not view.done:
                summary.finish(event)
                view.finish()
            aborting.note_event(event)

    subscription = await world.tail(0, on_record)
    try:
        await world.send(COMMAND, start)
        await view.wait("the Demiurge ran")
    except (asyncio.CancelledError, OutputClosed):
        await aborting.abort(world)
        raise
    finally:
        with contextlib.suppress(AosError, asyncio.TimeoutError):
            await asyncio.wait_for(subscription.cancel(), 2)
    if not args.json:
        if answer:  # the event line above is cut to fit; the answer is what was asked for
            print(f"\n{answer[-1]}\n", flush=True)
        print(summary.line(model, args.provider, args.twin), flush=True)
    return 0 if summary.ok else 1


def main(args: argparse.Namespace) -> int:
    """The exit status of ``aos demiurge``; errors propagate to ``aos.cli`` (one line there)."""
    from aos import cli_connect
    from aos.cli_agent import EXIT_ON_SIGNAL, _sigterm_interrupts
    from aos.kernel.client import Connection
    from aos.kernel.client import run as run_client

    if not args.task.strip():
        raise InvalidArgument('the task is empty: ask a question or name a task, e.g. aos demiurge W "what does '
                              'this world do?"')
    kinds = grant_kinds(args.grant)
    if args.twin and args.connect:
        raise InvalidArgument("--twin starts a kernel of its own, pointed at the twin: drop --connect")
    if args.bundle and not args.twin:
        raise InvalidArgument("--bundle is for --twin (create the world with `aos world create` otherwise)")
    caught: list[int] = []

    async def session(address: str | None, token: str | None, tls: Any) -> int:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None

        def on_signal(sig: int) -> None:
            if not caught:
                caught.append(sig)
                me.cancel()

        for sig in EXIT_ON_SIGNAL:
            loop.add_signal_handler(sig, on_signal, sig)
        if address is None:
            conn, held = await cli_connect.connect(args)
        else:
            assert token is not None
            conn = await Connection.open(address, tls=tls)
            held = cli_connect.Held(*(await conn.restore_with_info(token)))
        with contextlib.closing(conn):
            worlds = await held.worlds(args)
            universe = held.universe(args)
            if args.bundle:
                await _create_from_bundle(worlds, args.world, args.bundle)
            try:
                return await run_demiurge(args, conn, worlds, universe, kinds)
            except asyncio.CancelledError:
                if not caught:
                    raise
                print("aos: interrupted: the Demiurge's session was aborted", file=sys.stderr, flush=True)
                return EXIT_ON_SIGNAL[signal.Signals(caught[0])]

    with _sigterm_interrupts():
        if not args.twin:
            return run_client(session(None, None, None))
        from aos.kernel.process import KernelProcess

        twin, env = start_twin(args.provider)
        kernel = None
        try:
            data = os.environ.get("AOS_DEMIURGE_DATA") or os.path.join(os.path.expanduser("~"), ".local", "share",
                                                                        "aos", "demiurge")
            os.makedirs(data, exist_ok=True)
            kernel = KernelProcess(data, extra_args=["--health", ""], env={**os.environ, **env},
                                   exit_with_parent=True)
            kernel.start()
            if not args.json:
                print(f"started an offline kernel (data {data})", file=sys.stderr, flush=True)
            return run_client(session(kernel.address, kernel.admin_token, None))
        finally:
            if kernel is not None:
                kernel.stop()
            twin.stop()


async def _create_from_bundle(worlds: Any, world_id: str, bundle: str) -> None:
    from aos.cli_world import load_bundle_doc

    if any(w["worldId"] == world_id for w in await worlds.list()):
        return
    doc, wasm = load_bundle_doc(bundle, None)
    await worlds.create(doc, wasm, world_id)


# --- the offline twin -------------------------------------------------------------------------------


def start_twin(provider: str) -> tuple[Any, dict[str, str]]:
    """A provider twin whose scripted model reads the world and reports it; the kernel's environment for it."""
    from aos.adapters.llm.testing import ProviderTwin, Turn
    from aos.cli_twin import BASE_URL_VARS, KEY_VARS, TWIN_KEY

    twin = ProviderTwin(provider, api_key=TWIN_KEY)
    twin.record = False
    twin.repeat(Turn(_twin_reply(provider)))
    twin.start()
    return twin, {BASE_URL_VARS[provider]: twin.base_url, "AOS_SECRET_" + KEY_VARS[provider]: TWIN_KEY}


def _twin_reply(provider: str) -> Any:
    from aos.adapters.llm.testing import ModelTurn, ScriptedCall, TwinRequest
    from aos.cli_twin import tool_results

    def reply(request: TwinRequest) -> ModelTurn:
        results = [_unwrap(r) for r in tool_results(provider, request.body)]
        if not results:
            return ModelTurn(tool_calls=[ScriptedCall("world_overview", "{}", id="call_twin_0")])
        if len(results) == 1:
            return ModelTurn(tool_calls=[ScriptedCall("manifest_history", "{}", id="call_twin_1")])
        return ModelTurn(text=twin_summary(results[0], results[1]))

    return reply


def _unwrap(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value["result"] if isinstance(value, dict) and isinstance(value.get("result"), str) else text


def twin_summary(overview_text: str, history_text: str) -> str:
    """What the offline twin says, made only of what the two tools returned."""
    try:
        o, h = json.loads(overview_text), json.loads(history_text)
    except ValueError:
        return f"I am the offline twin. The world said: {overview_text[:300]}"
    flows = "; ".join(f"{w['name']} ({'keyed, ' + str(w['cells']) + ' cell(s)' if w['keyed'] else 'one state'})"
                      for w in o.get("workflows", []))
    proposals = h.get("proposals", [])
    changes = h.get("history", [])
    return (f"World {o['world']} runs manifest {o['manifest']} with {len(o.get('workflows', []))} workflow(s): "
            f"{flows or 'none'}. Its journal holds {o['journal_height']} record(s); {o['inputs_applied']} input(s) "
            f"applied, {o['stats']['traps']} trap(s) since it woke, {o['effects_in_flight']} effect(s) in flight. "
            f"Grants: {', '.join(g['name'] + ' (' + g['cap'] + ')' for g in o.get('grants', [])) or 'none'}. "
            f"Governance: {len(proposals)} proposal(s), {len(changes)} manifest change(s). "
            "I am the offline twin, not a model: I only read the world's overview and history. "
            "Drop --twin (with a key in the kernel's environment) for a real Demiurge.")
