"""A kernel on shared storage: its log in the group commit, its worlds' ownership and hand-over.

How it works:

- **One log per host.** The host id is the log id. ``open`` starts a new
  generation of it (fencing any older one of this host), then replays into
  RocksDB the turns the previous generation put in the log but not in
  RocksDB (a crash can fall between the two; ``storage.applied`` in the
  ``meta`` family says which turn RocksDB has last).
- **Acknowledged means in S3.** ``write`` is the group committer's writer:
  on its one thread, each turn goes to the log (one object) *before*
  RocksDB, and only then do the turn's callers hear "durable". ``Fenced``
  and ``StorageUnavailable`` raise out of it, into the committer's fatal
  path. Blobs are not in the log: they went to the universe's CAS objects
  before their put returned (``ObjectCas``).
- **Each turn is sorted by world** (``classify.py``) into the ownerships of
  the worlds this host owns, and a world whose unflushed history grew past
  ``CHECKPOINT_RECORDS``/``CHECKPOINT_BYTES`` is cut there, between two
  turns, and flushed to its segments by a pool thread: so a checkpoint's
  tail starts exactly where the cut was, and nothing is in neither.
- **Jobs that must not interleave with turns** (a release's cut, its
  segments, head and local drop; an explicit checkpoint's cut) run on the
  commit thread itself (``GroupCommitter.call``).

Local-only writes (a world's state arriving or leaving, markers, the host's
identity) go to RocksDB directly, never to the log: they are in the world's
own objects already, or are this host's private knowledge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aos.errors import InvalidArgument, KernelError, OwnershipLost, UnknownWorld
from aos.kernel.names import check_name, key, seq_key
from aos.kernel.store import KernelStore, Op
from aos.kernel.storage.classify import SEQ, WORLDS_SUFFIX, Kind, TurnClassifier, timer_target, world_state_ops
from aos.kernel.storage.config import StorageConfig
from aos.kernel.storage.contract import LogBatch, ObjectStore, WorldHead
from aos.kernel.storage.objects import RequestCounter
from aos.kernel.storage.ownership import Cut, Ownership
from aos.kernel.storage.s3cas import KernelStoreCache, ObjectCas
from aos.kernel.storage.s3log import LogWriter, ObjectLogs
from aos.kernel.storage.worldhead import WorldHeads

if TYPE_CHECKING:
    from aos.kernel.store import GroupCommitter

log = logging.getLogger("aos.kernel.storage")

T = TypeVar("T")

CHECKPOINT_RECORDS = 1024  # records of one world between checkpoints (2 requests each: segment, head)
CHECKPOINT_BYTES = 4 << 20  # or this much unflushed history, whichever comes first

META_HOST = b"storage.host"  # JSON {"host", "storage"}: whose data directory this is
META_APPLIED = b"storage.applied"  # >QQ (generation, seq) of the last log batch RocksDB holds
ACQUIRING = b"storage.acquiring\x00"  # + key(U, W): state written locally, head maybe not ours yet
MOVED = b"storage.moved\x00"  # + key(U, W): a world this kernel released or lost (JSON, kernel/host/handover.py)
_APPLIED = struct.Struct(">QQ")
_HEAD = struct.Struct(">QQ")  # kernel/journal/store.py: a journal head is (next seq, epoch)
HOSTED_EPOCH = 1  # kernel/host/driver.py EPOCH: hosted worlds journal at one epoch; ownership epochs are S3's


def journal_space(universe: str) -> str:
    """Where a universe's hosted worlds journal (``kernel/host/registry.py`` ``journal_universe``)."""
    return universe + WORLDS_SUFFIX


def inbox_of(world: str) -> str:
    return "#world." + world  # kernel/host/effects.py inbox()


def side_ops(batches: Sequence[LogBatch], universe: str, world: str, earlier: Sequence[Op]) -> list[Op]:
    """``WorldHeads``'s ``side``: a world's state ops out of recovered log batches."""
    return world_state_ops([b.ops for b in batches], universe, world, earlier)


@dataclass(frozen=True, slots=True)
class Acquired:
    """What an acquire did: the world's new head, and who held it before (None: released or new)."""

    head: WorldHead
    previous: str | None
    took_over: bool


class HostStorage:
    """One kernel's handle on shared storage (made by ``KernelServer`` when ``--storage`` is given)."""

    def __init__(self, config: StorageConfig, store: KernelStore, host_id: str = "",
                 counter: RequestCounter | None = None) -> None:
        self.config = config
        self.store = store
        self.host_id = host_id
        self.counter = counter if counter is not None else RequestCounter()
        self.objects: ObjectStore | None = None
        self.logs: ObjectLogs | None = None
        self.log: LogWriter | None = None
        self.heads: WorldHeads | None = None
        self.cas: ObjectCas | None = None
        self.committer: GroupCommitter | None = None
        self.replayed = 0
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aos-storage")
        self._lock = threading.Lock()  # ownership bookkeeping, shared by the commit thread and the pool
        self._flushing: dict[tuple[str, str], Future[WorldHead]] = {}
        self.on_lost: Callable[[BaseException], None] | None = None
        self.checkpoints = 0
        self.appends = 0
        # a test hook (tests/storage/test_kernel_restart.py): die by SIGKILL right after this many log
        # appends, before RocksDB has the turn, which is the crash a restart must repair from the log
        self._crash_after = int(os.environ.get("AOS_TEST_CRASH_AFTER_LOG_APPENDS", "0") or 0)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The threads that talk to the object store outside the commit thread (blob puts, acquires)."""
        return self._pool

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def address(self) -> str | None:
        return self.heads.address if self.heads is not None else None

    @address.setter
    def address(self, value: str | None) -> None:
        assert self.heads is not None
        self.heads.address = value

    # --- start ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Check whose data directory this is, open a new log generation, replay what RocksDB lacks.

        Blocking (S3 requests); called once before the kernel's services exist.
        """
        logging.getLogger("botocore").setLevel(logging.WARNING)  # "found credentials in ..." on every start
        self.objects = self.config.open(self.counter)
        self.logs = ObjectLogs(self.objects)
        raw = self.store.get("meta", META_HOST)
        if raw is not None:
            mine = json.loads(raw)
            if self.host_id and self.host_id != mine["host"]:
                raise InvalidArgument(f"this data directory is host {mine['host']}'s, not {self.host_id}'s: "
                                      "drop --host-id or use another --data")
            if mine["storage"] != self.config.url:
                raise InvalidArgument(f"this data directory belongs to storage {mine['storage']}, not {self.config.url}")
            self.host_id = mine["host"]
        else:
            for family in ("worlds", "heads", "cas", "mail", "timers"):
                if next(self.store.scan(family, b""), None) is not None:
                    raise InvalidArgument("this data directory holds an embedded kernel's data; a kernel on shared "
                                          "storage needs a new --data directory")
            self.host_id = check_name(self.host_id or "h-" + secrets.token_hex(5), "host id")
            if self.logs.head(self.host_id) is not None:
                raise InvalidArgument(f"host {self.host_id} already has a log in {self.config.url} and this data "
                                      "directory is new: start with another --host-id (or none) and acquire its worlds")
        self.log = self.logs.open(self.host_id, self.host_id)
        if raw is None:
            self.store.write([Op("meta", META_HOST, json.dumps({"host": self.host_id, "storage": self.config.url}).encode())])
        self._replay()
        self.heads = WorldHeads(self.objects, self.logs, self.log, space=journal_space, side=side_ops)
        self.cas = ObjectCas(self.objects, KernelStoreCache(self.store))
        log.info("event=storage_open storage=%s host=%s generation=%d replayed=%d", self.config.url, self.host_id,
                 self.log.epoch, self.replayed)

    def _replay(self) -> None:
        """Put into RocksDB every turn of this host's log that RocksDB does not have (a crash between the two)."""
        assert self.logs is not None and self.log is not None
        raw = self.store.get("meta", META_APPLIED)
        start = _APPLIED.unpack(raw)[1] + 1 if raw is not None else 0
        fence = self.log.next_seq - 1  # our own opening fence: nothing older lies past it
        for batch in self.logs.read(self.host_id, start):
            if batch.seq >= fence:
                break
            if batch.fence or not batch.ops:
                continue
            self.store.write(list(batch.ops) + [self._applied(batch.epoch, batch.seq)])
            self.replayed += 1

    @staticmethod
    def _applied(generation: int, seq: int) -> Op:
        return Op("meta", META_APPLIED, _APPLIED.pack(generation, seq))

    # --- the commit thread ------------------------------------------------------------------------

    def write(self, ops: list[Op]) -> None:
        """The group committer's writer: the turn to the log, then to RocksDB; then sort it by world."""
        assert self.log is not None and self.heads is not None
        logged = [op for op in ops if op.family != "cas"]  # blob bytes live in the CAS objects only
        if not logged:
            self.store.write(ops)
            return
        seq = self.log.append(logged)
        self.appends += 1
        if self.appends == self._crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        turn = self._by_world(logged)  # before the write: a timer's delete is resolved from the store as it was
        self.store.write(ops + [self._applied(self.log.epoch, seq)])
        due = []
        with self._lock:
            for (universe, world), (first, records, side) in turn.items():
                own = self.heads.owned(universe, world)
                if own is None:
                    continue  # a world that left (a timer that fired as it went); its state went with it
                own.observe(first, records, side)
                if ((len(own.unflushed) >= CHECKPOINT_RECORDS or own.unflushed_bytes >= CHECKPOINT_BYTES)
                        and (universe, world) not in self._flushing):
                    due.append(own)
            for own in due:
                self._start_flush(own, own.cut(self.log.next_seq))

    def _by_world(self, ops: list[Op]) -> dict[tuple[str, str], tuple[int, list[bytes], list[Op]]]:
        def stored_timer(timer_key: bytes) -> tuple[str, str] | None:
            value = self.store.get("timers", timer_key)
            target = timer_target(value) if value is not None else None
            if target is None or not target.startswith("#world."):
                return None
            return timer_key.split(b"\x00", 1)[0].decode(), target[len("#world."):]

        classifier = TurnClassifier(stored_timer)
        out: dict[tuple[str, str], tuple[int, list[bytes], list[Op]]] = {}
        firsts: dict[tuple[str, str], int] = {}
        # a journal op's world depends only on its key without the seq, and a turn holds runs of
        # records of the same few worlds: classify each prefix once, not each record
        journals: dict[bytes, tuple[str, str] | None] = {}
        for op in ops:
            if op.family == "journal" and op.value is not None:
                prefix = op.key[:-SEQ]
                if prefix in journals:
                    journal_world = journals[prefix]
                else:
                    first_owned = classifier.classify(op)
                    journal_world = journals[prefix] = (
                        None if first_owned is None else (first_owned.universe, first_owned.world))
                if journal_world is not None:
                    _, records, _ = out.setdefault(journal_world, (-1, [], []))
                    firsts.setdefault(journal_world, int.from_bytes(op.key[-SEQ:], "big"))
                    records.append(op.value)
                continue
            owned = classifier.classify(op)
            if owned is None or owned.kind is Kind.DERIVED:
                continue
            world = (owned.universe, owned.world)
            _, records, side = out.setdefault(world, (-1, [], []))
            if owned.kind is Kind.RECORD:
                assert op.value is not None
                firsts.setdefault(world, owned.seq)
                records.append(op.value)
            else:
                side.append(op)
        return {world: (firsts.get(world, -1), records, side) for world, (_, records, side) in out.items()}

    def _start_flush(self, own: Ownership, cut: Cut, *, release: bool = False) -> Future[WorldHead]:
        """Flush ``cut`` on the pool (call with ``_lock`` held, on the commit thread)."""
        world = (own.universe, own.world)
        future = self._pool.submit(self._flush, own, cut, release)
        self._flushing[world] = future
        return future

    def _flush(self, own: Ownership, cut: Cut, release: bool) -> WorldHead:
        assert self.heads is not None
        world = (own.universe, own.world)
        try:
            head = self.heads.flush(own, cut, release=release, lock=self._lock)
            self.checkpoints += 1
            return head
        except Exception as exc:
            if isinstance(exc, OwnershipLost):
                # taken while we wrote: the thief fenced our log first, so nothing more of ours is
                # acknowledged; stop now rather than at the next turn
                log.critical("event=world_taken world=%s error=%r", own.world, str(exc)[:200])
                if self.on_lost is not None:
                    self.on_lost(exc)
            else:
                log.warning("event=checkpoint_failed world=%s error=%r", own.world, str(exc)[:200])
            raise
        finally:
            with self._lock:
                self._flushing.pop(world, None)

    # --- calls from the event loop ----------------------------------------------------------------

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _on_commit_thread(self, fn: Callable[[], T]) -> T:
        assert self.committer is not None
        return await self.committer.call(fn)

    def owns(self, universe: str, world: str) -> bool:
        return self.heads is not None and self.heads.owned(universe, world) is not None

    async def head(self, universe: str, world: str) -> WorldHead | None:
        assert self.heads is not None
        return await self._in_pool(self.heads.head, universe, world)

    async def create(self, universe: str, world: str) -> WorldHead:
        """Claim a new world's head for this host (``InvalidArgument`` if its id was ever used)."""
        assert self.heads is not None
        own = await self._in_pool(lambda: self.heads.acquire(universe, world, create=True))  # type: ignore[union-attr]
        return own.head

    async def reacquire(self, universe: str, world: str) -> WorldHead:
        """At start: own again a world whose head names this host (recovering our previous generation's tail).

        RocksDB already holds all of it (``_replay``), so nothing is applied locally. Never a takeover:
        another host may have taken the world over since the caller read its head (its failover racing
        our restart), and taking it back would fence that live host's whole log; ``OwnershipLost`` then.
        """
        assert self.heads is not None
        own = await self._in_pool(lambda: self.heads.acquire(universe, world, takeover=False))  # type: ignore[union-attr]
        return own.head

    async def acquire(self, universe: str, world: str, takeover: bool = True) -> Acquired:
        """Take a world (released, or with ``takeover`` from its owner by fencing it): its whole state lands
        in RocksDB before its head names this host. ``OwnershipLost`` if another host holds it and not
        ``takeover``."""
        assert self.heads is not None
        previous: list[WorldHead | None] = []

        def materialize(head: WorldHead, records: list[bytes], state: list[Op]) -> None:
            if not any(op.family == "worlds" and op.value is not None for op in state):
                raise UnknownWorld(f"world {world!r} has a head in {self.config.url} but no registry entry "
                                   "(its creation never finished)")
            self._apply(universe, world, records, state)

        def work() -> Ownership:
            assert self.heads is not None
            previous.append(self.heads.head(universe, world))
            if previous[0] is None:
                raise UnknownWorld(f"no world {world!r} in universe {universe} in {self.config.url}")
            return self.heads.acquire(universe, world, takeover=takeover, materialize=materialize)

        try:
            own = await self._in_pool(work)
        except BaseException:
            await self._in_pool(self.drop_local, universe, world, [])
            raise
        old = previous[0]
        self.store.write([Op("meta", ACQUIRING + key(universe, world), None)])
        return Acquired(own.head, old.owner if old is not None else None, old is not None and old.owner is not None)

    def _apply(self, universe: str, world: str, records: list[bytes], state: list[Op]) -> None:
        """Write a world's whole state into RocksDB (local only: it is in its segments already)."""
        marker = Op("meta", ACQUIRING + key(universe, world), b"")
        self.store.write([marker] + self.local_world_ops(universe, world))
        journal = key(journal_space(universe), world)
        chunk: list[Op] = []
        for seq, record in enumerate(records):
            chunk.append(Op("journal", seq_key(journal, seq), record))
            if len(chunk) >= 4096:
                self.store.write(chunk)
                chunk = []
        chunk.append(Op("heads", journal, _HEAD.pack(len(records), HOSTED_EPOCH)))
        self.store.write(chunk + list(state))

    def local_world_ops(self, universe: str, world: str) -> list[Op]:
        """Deletes of every key of one world in this host's RocksDB (its journal, registry entry, inbox, timers)."""
        ops: list[Op] = []
        journal = key(journal_space(universe), world)
        ops += [Op("journal", k, None) for k, _ in self.store.scan("journal", journal)]
        ops.append(Op("heads", journal, None))
        ops.append(Op("worlds", key(universe, world), None))
        box = key(universe, inbox_of(world))
        ops += [Op("mail", k, None) for k, _ in self.store.scan("mail", box)]
        ops += [Op("maildedup", k, None) for k, _ in self.store.scan("maildedup", box)]
        ops += [Op("timers", k, None) for k, v in self.store.scan("timers", key(universe))
                if timer_target(v) == inbox_of(world)]
        return ops

    def drop_local(self, universe: str, world: str, extra: list[Op]) -> None:
        """Forget a world this host does not own (and write ``extra`` with it): local only, blocking."""
        assert self.heads is not None
        self.heads.forget(universe, world)
        self.store.write(self.local_world_ops(universe, world) + [Op("meta", ACQUIRING + key(universe, world), None)]
                         + extra)

    async def forget_local(self, universe: str, world: str, extra: list[Op]) -> None:
        """``drop_local`` between two commit turns, as a release's drop is: nothing reaches shared storage."""
        await self._on_commit_thread(lambda: self.drop_local(universe, world, extra))

    async def checkpoint(self, universe: str, world: str) -> WorldHead | None:
        """Flush what the world committed so far (a cut between two turns); None if it is not owned here."""
        assert self.heads is not None

        def cut() -> Future[WorldHead] | None:
            assert self.heads is not None and self.log is not None
            with self._lock:
                own = self.heads.owned(universe, world)
                if own is None or (universe, world) in self._flushing:
                    return self._flushing.get((universe, world))
                return self._start_flush(own, own.cut(self.log.next_seq))

        future = await self._on_commit_thread(cut)
        return None if future is None else await asyncio.wrap_future(future)

    async def checkpoint_all(self) -> None:
        """Flush every owned world (a clean stop, so the next start reads little of the log)."""
        assert self.heads is not None
        for universe, world in list(self.heads._owned):
            try:
                await self.checkpoint(universe, world)
            except Exception as exc:  # noqa: BLE001 -- best effort: the log has it all anyway
                log.warning("event=checkpoint_failed world=%s error=%r", world, str(exc)[:200])

    async def release(self, universe: str, world: str, extra: list[Op]) -> WorldHead:
        """Flush everything the world committed, write its head released, and drop it here.

        The caller drained the world first. Cut, segments, head and the local
        drop run as one job on the commit thread, so no turn lands between
        the cut and the drop (a timer firing meanwhile is a no-op here; the
        timer went with the world, still pending).
        """
        assert self.heads is not None

        def job() -> WorldHead:
            assert self.heads is not None and self.log is not None
            with self._lock:
                own = self.heads.owned(universe, world)
                pending = self._flushing.get((universe, world))
            if own is None:
                raise KernelError(f"world {world} is not owned by this kernel")
            if pending is not None:
                try:
                    pending.result()
                except Exception:  # noqa: BLE001 -- the release flushes whatever is left
                    pass
            with self._lock:
                cut = own.cut(self.log.next_seq)
            try:
                head = self.heads.flush(own, cut, release=True, lock=self._lock)
            except OwnershipLost as exc:  # taken meanwhile: our log is fenced, stop as a checkpoint would
                log.critical("event=world_taken world=%s error=%r", world, str(exc)[:200])
                if self.on_lost is not None:
                    self.on_lost(exc)
                raise
            self.drop_local(universe, world, extra)
            return head

        return await self._on_commit_thread(job)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)


def applied_position(store: KernelStore) -> tuple[int, int] | None:
    raw = store.get("meta", META_APPLIED)
    return None if raw is None else _APPLIED.unpack(raw)  # type: ignore[return-value]


def now_ms() -> int:
    return time.time_ns() // 1_000_000
