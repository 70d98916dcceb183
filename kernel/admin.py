"""``Kernel``, the admin capability: mints per-universe service capabilities."""

from __future__ import annotations

from typing import Any

from aos.caps.grants import Scope
from aos.caps.held import HeldImpl
from aos.kernel.names import check_name
from aos.kernel.rpc import remote
from aos.schemas import kernel_capnp


class KernelImpl(HeldImpl, kernel_capnp.Kernel.Server):  # type: ignore[misc,name-defined]
    def _mint(self, kind: str, universe: str) -> Any:
        check_name(universe, "universe id")
        return self.services.mint(self.grant, Scope(kind, universe))

    @remote()
    async def cas(self, universe: str, _context: Any, **kwargs: Any) -> Any:
        return self._mint("cas", universe)

    @remote()
    async def journal(self, universe: str, _context: Any, **kwargs: Any) -> Any:
        return self._mint("journal", universe)

    @remote()
    async def timers(self, universe: str, _context: Any, **kwargs: Any) -> Any:
        return self._mint("timers", universe)

    @remote()
    async def mailbox(self, universe: str, _context: Any, **kwargs: Any) -> Any:
        return self._mint("mailbox", universe)

    @remote()
    async def worlds(self, universe: str, _context: Any, **kwargs: Any) -> Any:
        return self._mint("worlds", universe)

    @remote()
    async def delegate(self, _context: Any, **kwargs: Any) -> Any:
        return self.services.mint(self.grant, Scope("kernel"))

    @remote()
    async def status(self, _context: Any, **kwargs: Any) -> Any:
        return self.services.status()

    @remote()
    async def universes(self, _context: Any, **kwargs: Any) -> Any:
        from aos.kernel.metrics import universes

        return universes(self.services)

    @remote()
    async def deliverPortal(self, universe: str, fromWorld: str, toWorld: str, messageId: str, eventSchema: str,
                            value: bytes, _context: Any, **kwargs: Any) -> Any:
        """Portal mail from another host of the cluster (kernel/scheduler/portal.py sends it)."""
        from aos.errors import InvalidArgument, PermissionDenied
        from aos.kernel.names import check_id
        from aos.kernel.rpc import check_size
        from aos.kernel.world import cbor
        from aos.kernel.world.errors import CborError

        if self.grant.scope.kind != "kernel":  # only a host's own Kernel token (hostcaps in etcd) gets here
            raise PermissionDenied("deliverPortal needs a Kernel capability")
        check_name(universe, "universe id")
        check_name(toWorld, "world id")
        check_id(messageId, "message id")
        check_id(fromWorld, "sending world")
        check_id(eventSchema, "event schema")
        check_size(value, self.services.limits.max_message_bytes, "portal value")
        try:
            decoded = cbor.decode(value)
        except CborError as exc:
            raise InvalidArgument(f"value: not CBOR ({exc})") from None
        payload = cbor.encode({"kind": "event", "schema": eventSchema, "value": decoded, "from": fromWorld})
        return await self.services.worlds.receive_portal(universe, toWorld, messageId, payload)
