"""``aos-scheduler``: the scheduler kernel. Several may run against one etcd; one leads.

How it works: the daemon mirrors the cluster's etcd keys (``ClusterView``,
one read and then a watch), serves the Gateway on its listeners, and runs an
election: it grants itself a lease and puts ``P/leader`` with it in a
transaction that succeeds only if the key does not exist. The winner says
``leading`` and runs the placement loop; the others say ``standing by``,
answer mutating calls with ``NotLeader`` (naming the leader), and try again
as soon as the leader key goes, which happens when the leader stops (it
revokes its lease) or dies (its lease lapses after ``--lease-ttl`` seconds).
A leader whose lease is lost stops leading at once: every write it makes
compares the leader key's create revision, so a deposed leader cannot write.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

import capnp

from aos import __version__
from aos.cli_errors import describe
from aos.errors import AosError, DataDirLocked, InvalidArgument
from aos.kernel import log as kernel_log
from aos.kernel.rpc import Peer, PeerLimits
from aos.kernel.scheduler.errors import EtcdUnavailable
from aos.kernel.scheduler.etcd import Etcd, Lease, watch_events
from aos.kernel.scheduler.layout import DEFAULT_SLOTS, ClusterConfig, LeaderRecord, dumps, loads, parse_etcd_url
from aos.kernel.scheduler.service import SchedulerConfig, SchedulerServices
from aos.kernel.scheduler.view import ClusterView
from aos.kernel.server import Address, parse_address
from aos.kernel.tls import check_listener_files, check_trusted_ca, listener_context, trusted_ca

RECONCILE_SHARE = 0.2  # of the leader's time, at most, for placement rounds under a stream of changes
log = logging.getLogger("aos.scheduler")

ADMIN_TOKEN_FILE = "admin.token"


def say(line: str) -> None:
    print(line, flush=True)


class SchedulerServer:
    def __init__(self, config: SchedulerConfig, slots: int = DEFAULT_SLOTS) -> None:
        self.config = config
        self.slots = slots
        self.id = f"sched-{os.getpid()}-{secrets.token_hex(3)}"
        self.etcd: Etcd | None = None
        self.view: ClusterView | None = None
        self.services: SchedulerServices | None = None
        self.address: Address | None = None
        self._server: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self.lease: Lease | None = None
        self.adopt_token = ""

    @property
    def admin_token_path(self) -> str:
        return self.adopt_token or os.path.join(self.config.data_dir, ADMIN_TOKEN_FILE)

    @property
    def public_address(self) -> str:
        """How clients and the leader record name this scheduler: ``tls:HOST:PORT`` when it speaks TLS."""
        text = str(self.address)
        if self.config.tls_cert and text.startswith("tcp:"):
            return "tls:" + text[len("tcp:"):]
        return text

    async def start(self) -> None:
        os.makedirs(self.config.data_dir, mode=0o700, exist_ok=True)
        self.etcd = await Etcd.open(self.config.etcd)
        await self._ensure_config()
        await SchedulerServices.ensure_root(self.etcd)
        entries, revision = await self.etcd.get_prefix(self.etcd.keys.everything)
        self.view = ClusterView(self.etcd.keys)
        self.view.load(entries, revision)
        self._tasks.append(asyncio.ensure_future(self._watch(revision + 1)))
        self.address = await self._listen(parse_address(self.config.listen))
        self.services = SchedulerServices(self.config, self.etcd, self.view, self.id, self.public_address)
        await self._ensure_admin_token()

    async def _ensure_config(self) -> None:
        assert self.etcd is not None
        key = self.etcd.keys.config
        await self.etcd.txn([self.etcd.tx.version(key) == 0],
                            [self.etcd.tx.put(key, dumps(asdict(ClusterConfig(self.slots))))])
        entry = await self.etcd.get(key)
        assert entry is not None
        found = ClusterConfig(**loads(entry.value))
        if found.slots != self.slots and self.slots != DEFAULT_SLOTS:
            raise InvalidArgument(f"--slots {self.slots}: this cluster was created with {found.slots} slots")

    async def _watch(self, revision: int) -> None:
        assert self.etcd is not None and self.view is not None
        while not self.stopping.is_set():
            try:
                await watch_events(self.etcd, self.etcd.keys.everything, revision, self.view.apply)
            except EtcdUnavailable as exc:
                log.warning("event=watch_lost error=%r", str(exc)[:200])
            # read again from where the view is and watch on (etcd may have been away)
            await asyncio.sleep(0.5)
            try:
                entries, now = await self.etcd.get_prefix(self.etcd.keys.everything)
            except EtcdUnavailable:
                continue
            fresh = ClusterView(self.etcd.keys, cap_listeners=self.view.cap_listeners, changed=self.view.changed)
            fresh.load(entries, now)
            for name in ("config", "leader", "leader_entry", "hosts", "hostcaps", "drains", "universes",
                         "universe_revisions", "slots", "slot_revisions", "caps", "history", "revision"):
                setattr(self.view, name, getattr(fresh, name))
            revision = now + 1

    async def _ensure_admin_token(self) -> None:
        assert self.services is not None
        if self.adopt_token:
            await self._adopt(self.adopt_token)
            return
        path = self.admin_token_path
        if os.path.exists(path):
            with open(path) as f:
                token = f.read().strip()
            try:
                await self.services.resolve_fresh(token)
                if self.services.tokens.resolve(token) == self.services.grants.ROOT_ID:
                    return
            except AosError:
                pass
            log.warning("event=admin_token_replaced path=%s reason=not_a_token_of_this_cluster", path)
        token = await self.services.save(self.services.grants.root)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    async def _adopt(self, path: str) -> None:
        """Make the operator's token (a Kubernetes Secret, say) an admin token of this cluster."""
        from aos.caps.tokens import token_hash
        from aos.kernel.store import Op

        assert self.services is not None
        with open(path) as f:
            token = f.read().strip()
        digest = token_hash(token)  # InvalidToken unless it is aos1_ + 43 base64url characters
        await self.services.resolve_fresh(token)
        if self.services.store.get("tokens", digest) is None:
            await self.services.committer.commit([Op("tokens", digest, digest + self.services.grants.ROOT_ID.encode())])
        elif self.services.tokens.resolve(token) != self.services.grants.ROOT_ID:
            raise InvalidArgument(f"--admin-token {path}: that token stands for another capability of this cluster")

    async def _listen(self, address: Address) -> Address:
        if address.kind == "unix":
            if os.path.exists(address.path):
                os.unlink(address.path)
            self._server = await capnp.AsyncIoStream.create_unix_server(self._on_connection, address.path)
            return address
        tls = listener_context(self.config.tls_cert, self.config.tls_key) if self.config.tls_cert else None
        self._server = await capnp.AsyncIoStream.create_server(self._on_connection, address.host, address.port,
                                                               ssl=tls)
        port = self._server.sockets[0].getsockname()[1]
        return Address("tcp", host=address.host, port=port)

    async def _on_connection(self, stream: Any) -> None:
        from aos.kernel.scheduler.server import SchedulerGateway

        assert self.services is not None
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self.services.connections += 1
        peer = Peer(PeerLimits())
        try:
            server = capnp.TwoPartyServer(stream, bootstrap=SchedulerGateway(self.services, peer))  # type: ignore[arg-type]
            await server.on_disconnect()
        except Exception as exc:  # a broken peer must never take the scheduler down
            log.info("event=connection_error error=%r", str(exc)[:200])
        except asyncio.CancelledError:
            pass
        finally:
            peer.close()
            self.services.connections -= 1
            if task is not None:
                self._connections.discard(task)

    # --- election --------------------------------------------------------------------------

    async def elect(self) -> None:
        """Lead when the leader key is free; stand by otherwise; until stopped."""
        assert self.etcd is not None and self.view is not None and self.services is not None
        keys, tx = self.etcd.keys, self.etcd.tx
        say("standing by")
        while not self.stopping.is_set():
            try:
                if self.view.leader is not None and self.view.leader.id != self.id:
                    await self.view.wait_changed(1.0)
                    continue
                lease = await self.etcd.lease(self.config.lease_ttl)
                record = LeaderRecord(self.id, self.public_address, os.getpid(), time.time_ns() // 1_000_000)
                won = await self.etcd.txn([tx.version(keys.leader) == 0],
                                          [tx.put(keys.leader, dumps(asdict(record)), lease=lease.id)])
                if not won:
                    await lease.revoke()
                    await self.view.wait_changed(1.0)
                    continue
                entry = await self.etcd.get(keys.leader)
                if entry is None or entry.lease != lease.id:
                    await lease.revoke()
                    continue
                lease.start()
                self.lease = lease
                self.services.leader_revision = entry.create_revision
                log.info("event=leading id=%s", self.id)
                say("leading")
                await self._lead(lease)
                self.services.leader_revision = 0
                self.lease = None
                if not self.stopping.is_set():
                    log.warning("event=leadership_lost id=%s", self.id)
                    say("standing by")
            except EtcdUnavailable as exc:
                self.services.leader_revision = 0
                log.warning("event=etcd_unavailable error=%r", str(exc)[:200])
                await asyncio.sleep(0.5)

    async def _lead(self, lease: Lease) -> None:
        assert self.view is not None and self.services is not None
        lost = asyncio.ensure_future(lease.lost.wait())
        stopped = asyncio.ensure_future(self.stopping.wait())
        loop = asyncio.get_running_loop()
        try:
            while not lease.lost.is_set() and not self.stopping.is_set():
                started = loop.time()
                try:
                    await self.services.reconcile()
                except AosError as exc:
                    if not self.services.leading:
                        return
                    log.warning("event=reconcile_failed error=%r", str(exc)[:200])
                spent = loop.time() - started
                changed = asyncio.ensure_future(self.view.wait_changed(1.0))
                await asyncio.wait([changed, lost, stopped], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if not self.services.leading:
                    return
                # a round costs O(worlds) of this loop's time, and a stream of changes (every world created,
                # every host's advertisement) would run rounds back to back and starve the RPCs: rounds get
                # at most RECONCILE_SHARE of the time (a few ms of delay with few worlds)
                rest = spent / RECONCILE_SHARE - (loop.time() - started)
                if rest > 0:
                    await asyncio.wait([lost, stopped], timeout=rest)
        finally:
            lost.cancel()
            stopped.cancel()

    async def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.lease is not None:
            await self.lease.revoke()  # a standby takes over now, not after the TTL
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.services is not None:
            await self.services.close()
        if self.etcd is not None:
            await self.etcd.close()
        if self.address is not None and self.address.kind == "unix" and os.path.exists(self.address.path):
            os.unlink(self.address.path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aos-scheduler",
                                     description="Place universes' worlds on host kernels (state in etcd).")
    parser.add_argument("--etcd", default=os.environ.get("AOS_ETCD", ""),
                        help="etcd client URL, http://HOST:PORT[/PREFIX] (default: $AOS_ETCD)")
    parser.add_argument("--data", default=os.environ.get("AOS_SCHEDULER_DATA", ""),
                        help="directory for this scheduler's admin.token (default: $AOS_SCHEDULER_DATA, else "
                             "~/.local/share/aos/scheduler)")
    parser.add_argument("--admin-token", metavar="FILE", default=os.environ.get("AOS_SCHEDULER_TOKEN_FILE", ""),
                        help="use the token in FILE as an admin token of the cluster (a secret the operator made, "
                             "e.g. `python -c 'from aos.caps.tokens import new_token; print(new_token())'`); "
                             "default: mint one into DATA/admin.token")
    parser.add_argument("--listen", default="tcp:127.0.0.1:0", metavar="ADDR",
                        help="unix:PATH or tcp:HOST:PORT (default tcp:127.0.0.1:0)")
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate for the TCP listener (with --tls-key): "
                        "it speaks TLS and is named tls:HOST:PORT")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for the TCP listener")
    parser.add_argument("--tls-ca", metavar="PEM", default=None,
                        help="CA to trust when reaching hosts that listen with TLS (tls:HOST:PORT) "
                             "(default: $AOS_TLS_CA, else the system's CAs)")
    parser.add_argument("--health", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="gRPC health endpoint ('' = off; default 127.0.0.1:0)")
    parser.add_argument("--lease-ttl", type=int, default=3, metavar="SECONDS",
                        help="lease TTL for the leader and the hosts (etcd's minimum is 2; default 3)")
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS,
                        help=f"slots of a new cluster (fixed once created; default {DEFAULT_SLOTS})")
    parser.add_argument("--no-rebalance", action="store_true", help="never move running worlds to even out load")
    parser.add_argument("--metrics", metavar="HOST:PORT", default=os.environ.get("AOS_METRICS", ""),
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: $AOS_METRICS, else off; "
                             "port 0 picks one)")
    parser.add_argument("--log-level", default=os.environ.get("AOS_LOG_LEVEL", "info"))
    parser.add_argument("--version", action="version", version=f"aos-scheduler {__version__}")
    return parser


def check(args: argparse.Namespace) -> None:
    if not args.etcd:
        raise InvalidArgument("--etcd http://HOST:PORT is required (or set AOS_ETCD)")
    parse_etcd_url(args.etcd)
    parse_address(args.listen)
    check_listener_files(args.tls_cert, args.tls_key)
    check_trusted_ca(trusted_ca(args.tls_ca))
    if not 2 <= args.lease_ttl <= 600:
        raise InvalidArgument(f"--lease-ttl {args.lease_ttl}: use 2 to 600 seconds")
    if args.admin_token and not os.path.isfile(args.admin_token):
        raise InvalidArgument(f"--admin-token {args.admin_token}: no such file")
    if not 1 <= args.slots <= 65536:
        raise InvalidArgument(f"--slots {args.slots}: use 1 to 65536")
    if args.metrics:
        host, sep, port = args.metrics.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise InvalidArgument(f"--metrics {args.metrics!r}: use HOST:PORT (port 0 picks a free one)")


async def run(args: argparse.Namespace) -> int:
    check(args)
    data = os.path.abspath(args.data or os.path.join(os.path.expanduser("~"), ".local", "share", "aos", "scheduler"))
    config = SchedulerConfig(data, args.etcd, args.listen, args.lease_ttl, not args.no_rebalance,
                             tls_cert=args.tls_cert or "", tls_key=args.tls_key or "", tls_ca=trusted_ca(args.tls_ca))
    server = SchedulerServer(config, args.slots)
    server.adopt_token = os.path.abspath(args.admin_token) if args.admin_token else ""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stopping.set)
    health = None
    metrics = None
    try:
        await server.start()
        say(f"aos-scheduler {__version__} id={server.id} pid={os.getpid()} etcd={args.etcd}")
        say(f"listening {server.public_address}")
        if args.health:
            from aos.kernel.health import HealthEndpoint

            health = HealthEndpoint(args.health)
            health.start()
            say(f"health grpc {health.address}")
        if args.metrics:
            from aos.kernel.scheduler.metrics import SchedulerMetrics

            assert server.services is not None
            metrics = SchedulerMetrics(server.services, args.metrics)
            await metrics.start()
            say(f"metrics http://{metrics.address}/metrics")
        say(f"admin token: {server.admin_token_path}")
        say("ready")
        election = asyncio.ensure_future(server.elect())
        await server.stopping.wait()
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
        log.info("event=shutdown reason=signal")
        return 0
    finally:
        if health is not None:
            health.stop()
        if metrics is not None:
            await metrics.stop()
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    kernel_log.configure(args.log_level)
    try:
        code = asyncio.run(capnp.run(run(args)))
    except KeyboardInterrupt:
        code = 130
    except (AosError, DataDirLocked) as exc:
        print(f"aos-scheduler: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        code = 1
    except OSError as exc:
        print(f"aos-scheduler: cannot start: {describe(exc)}", file=sys.stderr, flush=True)
        code = 1
    except Exception as exc:
        log.critical("event=crashed error=%r", str(exc)[:200], exc_info=exc)
        print(f"aos-scheduler: {describe(exc)}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
