"""The scheduler's Cap'n Proto servers: wire values in and out, scope checks, nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aos.caps.gateway import GatewayImpl
from aos.caps.grants import Scope
from aos.caps.held import HeldImpl
from aos.errors import InvalidArgument, InvalidToken, PermissionDenied
from aos.kernel.names import check_name
from aos.kernel.rpc import remote
from aos.kernel.scheduler.layout import HostRecord, Quota
from aos.schemas import scheduler_capnp

if TYPE_CHECKING:
    from aos.kernel.scheduler.service import SchedulerServices


def _labels(items: Any) -> dict[str, str]:
    out = {}
    for item in items:
        out[check_name(item.key, "label key")] = check_name(item.value, "label value")
    return out


def _quota(quota: Any) -> Quota:
    return Quota(int(quota.worlds), int(quota.bytes))


def _writable(impl: Any, what: str) -> None:
    if impl.grant.scope.read_only:
        raise PermissionDenied(f"a read-only {impl.grant.scope.kind} capability cannot {what}")


class SchedulerGateway(GatewayImpl):
    """The kernel's Gateway, with one addition: a token another scheduler saved a moment ago is read from etcd."""

    @remote()
    async def restore(self, token: str, _context: Any, **kwargs: Any) -> Any:
        try:
            self.services.tokens.resolve(token)
        except InvalidToken:
            await self.services.resolve_fresh(token)  # type: ignore[attr-defined]
        return await GatewayImpl.restore.method(self, token, _context, **kwargs)


class SchedulerImpl(HeldImpl, scheduler_capnp.Scheduler.Server):  # type: ignore[misc,name-defined]
    services: SchedulerServices  # type: ignore[assignment]

    @remote()
    async def status(self, _context: Any, **kwargs: Any) -> Any:
        return await self.services.status()

    @remote()
    async def createUniverse(self, universeId: str, name: str, quota: Any, _context: Any, **kwargs: Any) -> Any:
        _writable(self, "create universes")
        record = await self.services.create_universe(universeId, name, _quota(quota))
        return self.services.universe_info(record)

    @remote()
    async def listUniverses(self, _context: Any, **kwargs: Any) -> Any:
        view = self.services.view
        return [self.services.universe_info(u) for u in sorted(view.universes.values(), key=lambda u: u.id)]

    @remote()
    async def deleteUniverse(self, universeId: str, _context: Any, **kwargs: Any) -> None:
        _writable(self, "delete universes")
        await self.services.delete_universe(universeId)

    @remote()
    async def universe(self, universeId: str, _context: Any, **kwargs: Any) -> Any:
        await self.services.universe_record(universeId)  # UnknownUniverse early
        return self.services.mint(self.grant, Scope("universe", universeId, read_only=self.grant.scope.read_only))

    @remote()
    async def setQuota(self, universeId: str, quota: Any, _context: Any, **kwargs: Any) -> Any:
        _writable(self, "set quotas")
        return self.services.universe_info(await self.services.set_quota(universeId, _quota(quota)))

    @remote()
    async def join(self, host: Any, kernelToken: str, _context: Any, **kwargs: Any) -> Any:
        _writable(self, "join hosts")
        record = HostRecord(check_name(host.hostId, "host id"), host.address, float(host.capacity),
                            _labels(host.labels), host.storage, health=host.health)
        if not record.address or record.capacity < 0:
            raise InvalidArgument("a host needs an address and a capacity of 0 or more")
        # prove the address and token reach that host's kernel now, so a wrong one is this call's error
        from aos.kernel.scheduler.service import HostLinks

        links = HostLinks(self.services.config.tls_ca)
        try:
            await links.kernel(record, kernelToken)
        finally:
            links.close()
        return self.services.config.etcd, self.services.config.lease_ttl

    @remote()
    async def drain(self, hostId: str, draining: bool, _context: Any, **kwargs: Any) -> None:
        _writable(self, "drain hosts")
        await self.services.drain(hostId, draining)

    @remote()
    async def move(self, universeId: str, worldId: str, toHost: str, _context: Any, **kwargs: Any) -> Any:
        _writable(self, "move worlds")
        check_name(universeId, "universe id")
        return self.services.placement_info(await self.services.move(universeId, worldId, toHost))

    @remote()
    async def history(self, beforeSeq: int, afterSeq: int, limit: int, _context: Any, **kwargs: Any) -> Any:
        return [{"seq": e.seq, "atMs": e.at_ms, "kind": e.kind, "universeId": e.universe, "worldId": e.world,
                 "fromHost": e.from_host, "toHost": e.to_host, "epoch": e.epoch, "reason": e.reason}
                for e in self.services.history(int(beforeSeq), int(afterSeq), int(limit) or 100)]

    @remote()
    async def readOnly(self, _context: Any, **kwargs: Any) -> Any:
        return self.services.mint(self.grant, Scope("scheduler", read_only=True))


class UniverseImpl(HeldImpl, scheduler_capnp.Universe.Server):  # type: ignore[misc,name-defined]
    services: SchedulerServices  # type: ignore[assignment]

    @property
    def universe_id(self) -> str:
        return self.grant.scope.universe

    @remote()
    async def info(self, _context: Any, **kwargs: Any) -> Any:
        return self.services.universe_info(await self.services.universe_record(self.universe_id))

    @remote()
    async def createWorld(self, manifest: str, modules: Any, worldId: str, name: str, labels: Any, pin: str,
                          _context: Any, **kwargs: Any) -> Any:
        _writable(self, "create worlds")
        mods = [(m.hash, bytes(m.wasm)) for m in modules]
        placement, info = await self.services.create_world(self.universe_id, manifest, mods, worldId, name,
                                                           _labels(labels), pin)
        return self.services.placement_info(placement), info

    @remote()
    async def listWorlds(self, _context: Any, **kwargs: Any) -> Any:
        return [self.services.placement_info(p) for p in self.services.view.worlds_of(self.universe_id)]

    @remote()
    async def where(self, worldId: str, _context: Any, **kwargs: Any) -> Any:
        return self.services.placement_info(await self.services.placement(self.universe_id, worldId))

    @remote()
    async def introduce(self, worldId: str, _context: Any, **kwargs: Any) -> Any:
        return await self.services.introduce(self.universe_id, worldId, read_only=self.grant.scope.read_only)

    @remote()
    async def deleteWorld(self, worldId: str, _context: Any, **kwargs: Any) -> None:
        _writable(self, "delete worlds")
        self.services.require_leader()
        await self.services.delete_world(self.universe_id, worldId)
