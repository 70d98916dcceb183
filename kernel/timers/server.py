"""``Timers`` over Cap'n Proto."""

from __future__ import annotations

from typing import Any

from aos.caps.held import HeldImpl
from aos.kernel.names import check_name
from aos.kernel.rpc import check_size, remote
from aos.schemas import timers_capnp


class TimersImpl(HeldImpl, timers_capnp.Timers.Server):  # type: ignore[misc,name-defined]
    @remote()
    async def schedule(self, deliverAtMs: int, key: str, payload: bytes, target: str, _context: Any, **kwargs: Any) -> None:
        check_name(key, "timer key")
        check_name(target, "mailbox name")
        check_size(payload, self.services.limits.max_message_bytes, "timer payload")
        await self.services.timers.schedule(self.grant.scope.universe, key, deliverAtMs, target, payload)

    @remote()
    async def cancel(self, key: str, _context: Any, **kwargs: Any) -> bool:
        check_name(key, "timer key")
        return await self.services.timers.cancel(self.grant.scope.universe, key)

    @remote()
    async def pending(self, limit: int, _context: Any, **kwargs: Any) -> Any:
        timers = self.services.timers.pending(self.grant.scope.universe, limit or 1000, kernel=False)
        return [
            {"key": t.key, "deliverAtMs": t.deliver_at_ms, "target": t.target, "size": len(t.payload)} for t in timers
        ]
