"""What every kernel-minted capability object has in common, and the claim table behind ``save``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aos.caps.grants import Grant
from aos.errors import InvalidArgument
from aos.kernel.rpc import current_peer, remote

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


MAX_NONCE_BYTES = 64  # Gateway.save sends 16; anything longer is not one of ours


class ClaimTable:
    """The nonces of ``Gateway.save`` calls in flight, and the grant that claimed each.

    A nonce enters only when ``save`` makes one and leaves when that save ends,
    however it ends (answered, failed, or cancelled with its connection).
    ``claim`` with any other nonce changes nothing, so a client calling
    ``Held.claim`` itself can make the kernel keep nothing, and the table never
    holds more than one entry per save in flight (bounded per connection by
    ``PeerLimits.calls``).
    """

    def __init__(self) -> None:
        self._pending: dict[bytes, Grant | None] = {}

    def open(self) -> bytes:
        nonce = os.urandom(16)
        self._pending[nonce] = None
        return nonce

    def claim(self, nonce: bytes, grant: Grant) -> None:
        if len(nonce) > MAX_NONCE_BYTES:
            raise InvalidArgument(f"a claim nonce is at most {MAX_NONCE_BYTES} bytes, not {len(nonce)}")
        if nonce in self._pending and self._pending[nonce] is None:
            self._pending[nonce] = grant

    def close(self, nonce: bytes) -> Grant | None:
        """End the save that opened ``nonce``: the grant that claimed it, if any."""
        return self._pending.pop(nonce, None)

    def __len__(self) -> int:
        return len(self._pending)


class HeldImpl:
    """Mixin for capnp servers of interfaces that extend ``Held``.

    Objects are only made by ``KernelServices.cap_for``; there is no way to
    construct one from the wire, so a capability cannot be forged.
    """

    def __init__(self, services: KernelServices, grant: Grant) -> None:
        self.services = services
        self.grant = grant
        self.peer = current_peer()  # the connection it was made for; its calls count against it

    @remote()
    async def info(self, _context: Any, **kwargs: Any) -> Any:
        return cap_info(self.grant)

    @remote(check_grant=False)
    async def claim(self, nonce: bytes, _context: Any, **kwargs: Any) -> None:
        # Gateway.save sent this nonce to whatever capability it was handed;
        # only a kernel object can answer it with its grant.
        self.services.claims.claim(bytes(nonce), self.grant)
