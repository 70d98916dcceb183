"""Class 2: a world's inbox is the kernel's.

No Mailbox or Timers capability a client can hold (admin or attenuated) can
put an event or a receipt into a world's inbox, see or cancel the timers
behind a world's ``timer.set``, or subscribe to the inbox. Events reach a world
only through ``World.send`` or a granted portal; receipts only from the
kernel's dispatcher.
"""

import os
import sys
import time

import pytest

from aos.errors import AosError, InvalidArgument
from aos.kernel.client import Connection, run
from aos.kernel.world import cbor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

TIMER = "sys/timer.set@1"


def timer_world():
    return hostile_manifest({TIMER: declared("timer")}, {"timer": {"cap": "timer"}})


async def _victim(conn, kernel, due_in_s: float = 3600):
    """A world with one open timer intent; returns the admin, the world and its open intent's hash."""
    admin = await conn.restore_kernel(kernel.admin_token)
    worlds = await admin.worlds("u")
    world, _ = await worlds.create(timer_world(), world_id="victim")
    due = (time.time_ns() + int(due_in_s * 1e9))
    await world.send(SCRIPT, {"effects": [{"effect": TIMER, "params": {"deliver_at_ns": due, "key": "k"}}]})
    records, _ = await world.journal(0, 0)
    intent = next(r for r in records if r["kind"] == "effect_intent")
    return admin, world, intent["intent_hash"]


# names a client might try for the inbox of world "victim", and the kernel's own timer key space
INBOX_NAMES = ["#world.victim", "world.victim", "world/victim", "#world.victim\x00", "world.victim.", "%23world.victim"]


def _forged(intent_hash: str) -> list[bytes]:
    return [
        cbor.encode({"kind": "timer", "intent_hash": intent_hash, "delivered_at_ns": 1, "key": "k"}),
        cbor.encode({"kind": "event", "schema": SCRIPT, "value": {"emit": []}, "from": "x"}),
        cbor.encode({"kind": "receipt", "intent_hash": intent_hash, "status": "ok", "payload": {}}),
    ]


@pytest.mark.parametrize("attenuation", [None, ("*", "*"), ("world.victim", ""), ("world.victim", "world.victim")])
def test_no_mailbox_capability_reaches_a_world_inbox(kernel, attenuation):
    """Admin and attenuated mailbox caps cannot deliver events or forged receipts to a world, whatever name they try."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, world, intent_hash = await _victim(conn, kernel)
            mailbox = await admin.mailbox("u")
            if attenuation is not None:
                mailbox = await mailbox.attenuate(*attenuation)
            before = (await world.journal(0, 0))[1]
            accepted = 0
            for i, name in enumerate(INBOX_NAMES):
                for j, payload in enumerate(_forged(intent_hash)):
                    try:
                        accepted += await mailbox.send(name, f"m{i}.{j}", payload)
                    except AosError as exc:
                        assert exc.code in ("InvalidArgument", "PermissionDenied")
            # a plain mailbox that looks like an inbox is just a mailbox: let any accepted mail sit, then check
            # the world through a round trip that runs after the mail was committed
            await world.send(SCRIPT, {})
            records, height = await world.journal(0, 0)
            return accepted, before, height, records, await world.state(WORKFLOW)

    accepted, before, height, records, state = run(main())
    assert height == before + 2  # our own event and its state record: nothing else got in
    assert not any(r["kind"] == "receipt" for r in records)
    assert state["receipts"] == [] and state["n"] == 2


def test_the_inbox_cannot_be_subscribed_to_or_counted(kernel):
    """Receiving from an inbox (which would steal the world's mail) is refused as a bad name."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, _, _ = await _victim(conn, kernel)
            mailbox = await admin.mailbox("u")

            async def on_messages(messages):
                raise AssertionError("got the world's mail")

            for name in ("#world.victim", "#wt.x"):
                with pytest.raises(InvalidArgument):
                    await mailbox.subscribe(name, on_messages)
                with pytest.raises(InvalidArgument):
                    await mailbox.pending(name)

    run(main())


def test_timers_capabilities_cannot_target_see_or_cancel_world_timers(kernel):
    """A Timers cap cannot aim at an inbox, list the kernel's timers, or cancel a world's timer."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin, world, intent_hash = await _victim(conn, kernel, due_in_s=1.0)
            timers = await admin.timers("u")
            for payload in _forged(intent_hash):
                with pytest.raises(InvalidArgument):
                    await timers.schedule(0, "t1", payload, "#world.victim")
            with pytest.raises(InvalidArgument):
                await timers.schedule(0, "#wt.x", b"", "box")
            assert await timers.pending() == []  # the world's timer is the kernel's, not listed
            # whatever key a client guesses, it names a client timer, never the world's
            assert await timers.cancel("wt.0123") is False
            with pytest.raises(InvalidArgument):
                await timers.cancel("#wt.0123")

            async def fired():
                state = await world.state(WORKFLOW)
                return state if state["receipts"] else None

            return (await wait_until(fired))["receipts"], intent_hash

    receipts, _ = run(main())
    assert len(receipts) == 1 and receipts[0][:2] == [TIMER, "ok"]  # the real timer fired, once


def test_a_kernel_restart_keeps_inboxes_closed_and_timers_firing(data_dir):
    """After a restart the world's pending timer still fires, and a forged receipt sent meanwhile had no effect."""
    from aos.testing import KernelProcess

    proc = KernelProcess(data_dir).start()
    try:
        async def setup():
            async with await Connection.open(proc.address) as conn:
                admin, _, intent_hash = await _victim(conn, proc, due_in_s=1.5)
                mailbox = await admin.mailbox("u")
                await mailbox.send("world.victim", "forge", _forged(intent_hash)[0])

        run(setup())
        proc.stop()
        proc.start()

        async def check():
            async with await Connection.open(proc.address) as conn:
                admin = await conn.restore_kernel(proc.admin_token)
                world = await (await admin.worlds("u")).open("victim")

                async def fired():
                    state = await world.state(WORKFLOW)
                    return state if state["receipts"] else None

                return await wait_until(fired)

        state = run(check())
        effect, status, payload = state["receipts"][0]
        assert (effect, status) == (TIMER, "ok")
        assert payload["delivered_at_ns"] != 1  # the kernel's, not the forged one
    finally:
        proc.kill()
