"""Everything a capability object needs, in one place, and the only way to make one.

``KernelServices`` owns the stores, the grant and token tables, and the live
subscriptions. ``cap_for`` is the single factory for capability objects, so
every capability is backed by a grant the kernel minted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aos import __version__
from aos.caps.grants import Grant, GrantTable, Scope
from aos.caps.held import ClaimTable
from aos.caps.tokens import TokenTable
from aos.errors import ResourceExhausted, Revoked
from aos.kernel.cas.store import CasStore
from aos.kernel.config import KernelConfig
from aos.kernel.journal.store import JournalStore
from aos.kernel.mailbox.store import MailboxStore
from aos.kernel.rpc import current_peer
from aos.kernel.store import GroupCommitter, KernelStore
from aos.kernel.timers.store import TimerStore
from aos.kernel.world.python_runtime import PythonAllowList

if TYPE_CHECKING:
    from aos.kernel.storage.hosting import HostStorage

log = logging.getLogger("aos.kernel")


class KernelServices:
    def __init__(self, config: KernelConfig, store: KernelStore, committer: GroupCommitter,
                 storage: HostStorage | None = None) -> None:
        self.config = config
        self.limits = config.limits
        self.store = store
        self.committer = committer
        self.storage = storage  # None: embedded (RocksDB only)
        self.cas = CasStore(store, committer, storage.cas, storage.executor) if storage is not None else CasStore(
            store, committer)
        self.journal = JournalStore(store, committer)
        self.mailboxes = MailboxStore(store, committer)
        self.timers = TimerStore(store, committer, self.mailboxes)
        self.grants = GrantTable({k.decode(): v for k, v in store.scan("grants", b"")})
        self.tokens = TokenTable(store)
        self.claims = ClaimTable()
        self.connections = 0
        self.started_at_ms = time.time_ns() // 1_000_000
        self._subscriptions: dict[asyncio.Task[None], Grant] = {}
        self._exclusive: dict[tuple[str, ...], asyncio.Task[None]] = {}
        self.grants.watch_revocations(self._end_revoked_subscriptions)
        from aos.kernel.host.host import WorldHost

        self.worlds = WorldHost(self, idle_seconds=config.idle_seconds, host_roots=config.host_roots,
                                python=PythonAllowList.of(config.python_modules),
                                python_step_seconds=config.python_step_seconds)

    # --- capability objects ---------------------------------------------------------------

    def cap_for(self, grant: Grant) -> Any:
        from aos.caps.gateway import RevokerImpl
        from aos.kernel.admin import KernelImpl
        from aos.kernel.cas.server import CasImpl
        from aos.kernel.host.server import WorldImpl, WorldsImpl
        from aos.kernel.journal.server import JournalImpl
        from aos.kernel.mailbox.server import MailboxImpl
        from aos.kernel.timers.server import TimersImpl

        kinds = {
            "kernel": KernelImpl,
            "cas": CasImpl,
            "journal": JournalImpl,
            "timers": TimersImpl,
            "mailbox": MailboxImpl,
            "revoker": RevokerImpl,
            "worlds": WorldsImpl,
            "world": WorldImpl,
        }
        return kinds[grant.scope.kind](self, grant)

    def _with_revoker(self, grant: Grant) -> tuple[Any, Any]:
        revoker = self.grants.derive(grant, Scope("revoker", grant.scope.universe))
        return self.cap_for(grant), self.cap_for(revoker)

    def mint(self, parent: Grant, scope: Scope) -> tuple[Any, Any]:
        """A new capability with ``scope`` under ``parent``, and its revoker."""
        return self._with_revoker(self.grants.derive(parent, scope))

    def attenuate(self, parent: Grant, **narrower: Any) -> tuple[Any, Any]:
        return self._with_revoker(self.grants.attenuate(parent, **narrower))

    async def save(self, grant: Grant) -> str:
        token, ops = self.tokens.mint_ops(grant.id)
        await self.committer.commit(self.grants.persist_ops(grant) + ops)
        self.grants.mark_persisted(grant)
        return token

    async def revoke(self, grant: Grant) -> None:
        ops = self.grants.revoke(grant)
        if ops:
            await self.committer.commit(ops)
        log.info("event=revoked grant=%s scope=%r", grant.id, grant.scope.describe())

    # --- subscriptions ----------------------------------------------------------------------

    def subscribe(self, grant: Grant, work: Coroutine[Any, Any, None], exclusive: tuple[str, ...] | None = None) -> asyncio.Task[None]:
        """Run a subscription loop until it ends, fails, or its grant is revoked.

        The subscription belongs to the connection of the call that starts it:
        it counts against that connection's limit and ends with it.
        """
        peer = current_peer()
        if peer is not None:
            try:
                peer.check_subscription_room()
            except ResourceExhausted:
                work.close()  # never started: no "coroutine was never awaited"
                raise
        if exclusive is not None:
            previous = self._exclusive.pop(exclusive, None)
            if previous is not None:
                previous.cancel()
        task = asyncio.get_running_loop().create_task(work)
        self._subscriptions[task] = grant
        if peer is not None:
            peer.add_subscription(task)
        if exclusive is not None:
            self._exclusive[exclusive] = task
        task.add_done_callback(lambda t: self._subscription_done(t, exclusive))
        return task

    def _subscription_done(self, task: asyncio.Task[None], exclusive: tuple[str, ...] | None) -> None:
        self._subscriptions.pop(task, None)
        if exclusive is not None and self._exclusive.get(exclusive) is task:
            del self._exclusive[exclusive]
        if not task.cancelled():
            error = task.exception()
            if error is not None and not isinstance(error, Revoked):
                log.info("event=subscription_ended reason=%r", str(error).splitlines()[0][:200] if str(error) else type(error).__name__)

    def _end_revoked_subscriptions(self) -> None:
        for task, grant in list(self._subscriptions.items()):
            if not grant.live():
                task.cancel()

    async def close(self) -> None:
        tasks = list(self._subscriptions)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        limits = self.limits
        # every hosted world has exactly one journal, created in the same write as its registry entry
        journals, worlds = self.journal.count(), len(self.worlds.registry)
        return {
            "version": __version__,
            "startedAtMs": self.started_at_ms,
            "dataDir": self.config.data_dir,
            "connections": self.connections,
            "worlds": journals,  # the wire name; it counts every journal
            "hostedWorlds": worlds,
            "rawJournals": journals - worlds,
            "commitTurns": self.committer.turns,
            "committedRecords": self.journal.records_committed,
            "limits": {
                "maxMessageBytes": limits.max_message_bytes,
                "maxBlobBytes": limits.max_blob_bytes,
                "maxRecordsPerAppend": limits.max_records_per_append,
                "maxRecordsPerRead": limits.max_records_per_read,
            },
        }
