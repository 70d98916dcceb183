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
