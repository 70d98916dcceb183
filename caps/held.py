"""What every kernel-minted capability object has in common."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aos.caps.grants import Grant
from aos.kernel.rpc import remote

if TYPE_CHECKING:
    from aos.kernel.services import KernelServices


def cap_info(grant: Grant) -> dict[str, Any]:
    scope = grant.scope
    return {
        "kind": scope.kind,
        "grantId": grant.id,
        "universe": scope.universe,
        "readOnly": scope.read_only,
        "world": scope.world,
        "sendTo": scope.send_to if scope.kind == "mailbox" else "",
        "receiveFrom": scope.receive_from if scope.kind == "mailbox" else "",
        "description": scope.describe(),
    }


class HeldImpl:
    """Mixin for capnp servers of interfaces that extend ``Held``.

    Objects are only made by ``KernelServices.cap_for``; there is no way to
    construct one from the wire, so a capability cannot be forged.
    """

    def __init__(self, services: KernelServices, grant: Grant) -> None:
        self.services = services
        self.grant = grant

    @remote()
    async def info(self, _context: Any, **kwargs: Any) -> Any:
        return cap_info(self.grant)

    @remote(check_grant=False)
    async def claim(self, nonce: bytes, _context: Any, **kwargs: Any) -> None:
        # Gateway.save sent this nonce to whatever capability it was handed;
        # only a kernel object can put it in the kernel's claim table.
        self.services.claims[bytes(nonce)] = self.grant
