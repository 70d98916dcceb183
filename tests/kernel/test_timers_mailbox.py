"""Timers fire into mailboxes, durably; mailboxes deliver at least once, deduplicated."""

import asyncio
import time

import pytest

from aos.errors import InvalidArgument, PermissionDenied
from aos.kernel.client import Connection, run


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _admin(kernel, conn):
    return await conn.restore_kernel(kernel.admin_token)


class Inbox:
    """Collects delivered messages; tests wait on it with a timeout."""

    def __init__(self, fail_first: int = 0):
        self.messages = []
        self.fail_first = fail_first
        self.changed = asyncio.Event()

    async def __call__(self, messages):
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("receiver not ready")
        self.messages.extend(messages)
        self.changed.set()

    async def wait_for(self, count, timeout=10):
        async def until():
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.messages


def test_send_is_deduplicated_by_message_id(kernel):
    """The same message id is accepted once; the subscriber sees it once."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            mailbox = await (await _admin(kernel, conn)).mailbox("u")
            accepted = [await mailbox.send("box", "m1", b"one"), await mailbox.send("box", "m1", b"one again")]
            await mailbox.send("box", "m2", b"two")
            inbox = Inbox()
            subscription = await mailbox.subscribe("box", inbox)
            messages = await inbox.wait_for(2)
            await mailbox.send("box", "m1", b"after delivery")  # still a duplicate
            await mailbox.send("box", "m3", b"three")
            messages = await inbox.wait_for(3)

            async def acknowledged():  # the ack is written after deliver returns, not before
                while await mailbox.pending("box"):
                    await asyncio.sleep(0.01)
                return 0

            pending = await asyncio.wait_for(acknowledged(), 10)
            await subscription.cancel()
            return accepted, [(m.message_id, m.payload, m.attempt) for m in messages], pending

    accepted, messages, pending = run(main())
    assert accepted == [True, False]
    assert messages == [("m1", b"one", 1), ("m2", b"two", 1), ("m3", b"three", 1)]
    assert pending == 0


def test_failed_delivery_is_retried_until_acknowledged(kernel):
    """A subscriber that throws does not lose the message: the next subscriber gets it, attempt 2."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            mailbox = await (await _admin(kernel, conn)).mailbox("u")
            await mailbox.send("box", "m1", b"important")
            failing = Inbox(fail_first=1)
            failing_subscription = await mailbox.subscribe("box", failing)  # noqa: F841 (held: dropping ends it)
            # the failed delivery ends that subscription; the message stays queued
            async def queued():
                while await mailbox.pending("box") != 1:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(queued(), 10)
            inbox = Inbox()
            subscription = await mailbox.subscribe("box", inbox)
            messages = await inbox.wait_for(1)
            await subscription.cancel()
            return [(m.message_id, m.attempt) for m in messages], failing.messages

    delivered, failed_saw = run(main())
    assert delivered == [("m1", 2)] and failed_saw == []


def test_mail_survives_restart_until_delivered(kernel):
    """Messages sent before a restart are delivered after it."""

    async def send():
        async with await Connection.open(kernel.address) as conn:
            mailbox = await (await _admin(kernel, conn)).mailbox("u")
            for i in range(5):
                await mailbox.send("box", f"m{i}", str(i).encode())

    run(send())
    kernel.kill()
    kernel.start()

    async def receive():
        async with await Connection.open(kernel.address) as conn:
            mailbox = await (await _admin(kernel, conn)).mailbox("u")
            assert not await mailbox.send("box", "m0", b"dup after crash")
            inbox = Inbox()
            subscription = await mailbox.subscribe("box", inbox)
            delivered = await inbox.wait_for(5)
            await subscription.cancel()
            return [m.payload for m in delivered]

    assert run(receive()) == [b"0", b"1", b"2", b"3", b"4"]


def test_send_only_and_single_mailbox_attenuation(kernel):
    """A send-only cap cannot subscribe; a cap for one mailbox cannot touch another or widen."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            mailbox = await (await _admin(kernel, conn)).mailbox("u")
            send_only = await mailbox.attenuate("*", "")
            assert await send_only.send("anywhere", "m1", b"x")
            with pytest.raises(PermissionDenied):
                await send_only.subscribe("anywhere", Inbox())
            with pytest.raises(PermissionDenied):
                await send_only.attenuate("*", "*")
            own = await mailbox.attenuate("peer", "me")
            assert await own.send("peer", "m2", b"y")
            with pytest.raises(PermissionDenied):
                await own.send("someone-else", "m3", b"z")
            with pytest.raises(PermissionDenied):
                await own.pending("peer")
            with pytest.raises(InvalidArgument):
                await mailbox.send("bad name", "m4", b"")
            return (await send_only.info()).description

    assert run(main()) == "mailbox universe=u send=* receive=none"


def test_timer_fires_into_mailbox_and_cancel_prevents_firing(kernel):
    """A due timer becomes one message; a cancelled one never arrives."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await _admin(kernel, conn)
            timers, mailbox = await admin.timers("u"), await admin.mailbox("u")
            inbox = Inbox()
            subscription = await mailbox.subscribe("box", inbox)  # dropping the handle would end it
            await timers.schedule(now_ms() + 50, "cancelled", b"never", "box")
            assert await timers.cancel("cancelled")
            assert not await timers.cancel("cancelled")
            await timers.schedule(now_ms() + 100, "t1", b"tick", "box")
            await timers.schedule(now_ms() - 1000, "past", b"late", "box")
            messages = await inbox.wait_for(2)
            await subscription.cancel()
            return sorted((m.message_id.split(":")[1], m.payload) for m in messages), await timers.pending()

    messages, pending = run(main())
    assert messages == [("past", b"late"), ("t1", b"tick")]
    assert pending == []


def test_timer_due_while_kernel_was_down_fires_after_restart(kernel):
    """A timer that came due during downtime is delivered once the kernel is back."""
    due = now_ms() + 1500

    async def schedule():
        async with await Connection.open(kernel.address) as conn:
            timers = await (await _admin(kernel, conn)).timers("u")
            await timers.schedule(due, "wake", b"while you were out", "box")

    run(schedule())
    kernel.kill()
    # stay down until the timer is due (a condition on the clock, not a guess)
    while now_ms() <= due:
        time.sleep(0.05)
    kernel.start()

    async def receive():
        async with await Connection.open(kernel.address) as conn:
            mailbox = await (await _admin(kernel, conn)).mailbox("u")
            inbox = Inbox()
            subscription = await mailbox.subscribe("box", inbox)
            delivered = await inbox.wait_for(1)
            await subscription.cancel()
            return [(m.message_id, m.payload) for m in delivered]

    assert run(receive()) == [(f"timer:wake:{due}", b"while you were out")]
