"""``Mailbox`` over Cap'n Proto: scope checks and the delivery loop."""

from __future__ import annotations

from typing import Any

from aos.caps.gateway import HandleImpl
from aos.caps.grants import pattern_allows
from aos.caps.held import HeldImpl
from aos.errors import PermissionDenied
from aos.kernel.names import check_id, check_name, key
from aos.kernel.rpc import check_size, remote
from aos.schemas import mailbox_capnp

BATCH = 64


class MailboxImpl(HeldImpl, mailbox_capnp.Mailbox.Server):  # type: ignore[misc,name-defined]
    def _may_receive(self, mailbox: str) -> str:
        check_name(mailbox, "mailbox name")
        if not pattern_allows(self.grant.scope.receive_from, mailbox):
            raise PermissionDenied(f"this mailbox capability may not receive from {mailbox}")
        return mailbox

    @remote()
    async def send(self, to: str, messageId: str, payload: bytes, _context: Any, **kwargs: Any) -> bool:
        check_name(to, "mailbox name")
        check_id(messageId, "message id")
        if not pattern_allows(self.grant.scope.send_to, to):
            raise PermissionDenied(f"this mailbox capability may not send to {to}")
        check_size(payload, self.services.limits.max_message_bytes, "message")
        return await self.services.mailboxes.send(self.grant.scope.universe, to, messageId, payload)

    @remote()
    async def subscribe(self, mailbox: str, subscriber: Any, _context: Any, **kwargs: Any) -> Any:
        mailbox = self._may_receive(mailbox)
        universe = self.grant.scope.universe
        task = self.services.subscribe(
            self.grant, _deliver(self, universe, mailbox, subscriber), exclusive=("mailbox", universe, mailbox)
        )
        return HandleImpl(task)

    @remote()
    async def attenuate(self, sendTo: str, receiveFrom: str, _context: Any, **kwargs: Any) -> Any:
        for pattern in (sendTo, receiveFrom):
            if pattern not in ("", "*"):
                check_name(pattern, "mailbox name")
        return self.services.attenuate(self.grant, send_to=sendTo, receive_from=receiveFrom)

    @remote()
    async def pending(self, mailbox: str, _context: Any, **kwargs: Any) -> int:
        return self.services.mailboxes.count(self.grant.scope.universe, self._may_receive(mailbox))


async def _deliver(cap: MailboxImpl, universe: str, mailbox: str, subscriber: Any) -> None:
    store = cap.services.mailboxes
    box_key = key(universe, mailbox)
    while True:
        cap.grant.check()
        arrived = store.arrived.wait(box_key)  # before reading: no lost wake-up
        messages = store.queued(universe, mailbox, BATCH)
        if not messages:
            await arrived
            continue
        request = subscriber.deliver_request()
        out = request.init("messages", len(messages))
        for i, message in enumerate(messages):
            item = out[i]
            item.mailbox = mailbox
            item.messageId = message.message_id
            item.payload = message.payload
            item.sentAtMs = message.sent_at_ms
            item.attempt = store.attempt(box_key, message.seq)
        await request.send()
        await store.ack(universe, mailbox, [m.seq for m in messages])
