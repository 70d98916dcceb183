"""The bootstrap object of every connection, plus revokers and subscription handles."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aos.caps.held import HeldImpl, cap_info
from aos.errors import InvalidToken, NotSaveable
from aos.kernel.rpc import Peer, current_peer, remote
from aos.schemas import caps_capnp

if TYPE_CHECKING:
    from aos.kernel.services import KernelServices


class GatewayImpl(caps_capnp.Gateway.Server):  # type: ignore[misc,name-defined]
    """Holds no authority: it can only exchange tokens for capabilities."""

    def __init__(self, services: KernelServices, peer: Peer | None = None) -> None:
        self.services = services
        self.peer = peer  # everything restored through it belongs to this connection

    @remote()
    async def restore(self, token: str, _context: Any, **kwargs: Any) -> Any:
        grant = self.services.grants.get(self.services.tokens.resolve(token))
        if grant is None:
            # a token whose grant row is gone is as good as dropped
            raise InvalidToken("unknown or dropped token")
        grant.check()
        return self.services.cap_for(grant), cap_info(grant)

    @remote()
    async def save(self, cap: Any, _context: Any, **kwargs: Any) -> str:
        nonce = self.services.claims.open()
        try:
            await cap.claim(nonce)
        except Exception:
            raise NotSaveable("that capability was not minted by this kernel") from None
        finally:
            grant = self.services.claims.close(nonce)
        if grant is None:
            raise NotSaveable("that capability was not minted by this kernel")
        grant.check()
        return await self.services.save(grant)

    @remote()
    async def drop(self, token: str, _context: Any, **kwargs: Any) -> None:
        await self.services.committer.commit(self.services.tokens.drop_ops(token))


class RevokerImpl(HeldImpl, caps_capnp.Revoker.Server):  # type: ignore[misc,name-defined]
    """Its grant is a child of the target grant, so ``grant.parent`` is the target."""

    @remote(check_grant=False)
    async def revoke(self, _context: Any, **kwargs: Any) -> None:
        target = self.grant.parent
        assert target is not None
        await self.services.revoke(target)


class HandleImpl(caps_capnp.Handle.Server):  # type: ignore[misc,name-defined]
    """Ends its subscription when cancelled or when the client drops it."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task
        self.peer = current_peer()

    @remote(check_grant=False)
    async def cancel(self, _context: Any, **kwargs: Any) -> None:
        # wait for it to end, so a subscription made right after the answer has room
        self._task.cancel()
        await asyncio.wait({self._task})

    def __del__(self) -> None:
        self._task.cancel()

