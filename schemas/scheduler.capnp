@0xe8e84d870da872c8;
# The scheduler kernel (`aos-scheduler`): one orchestrator for every universe
# of a cluster. It keeps its state in etcd, places worlds on host kernels,
# and introduces clients to the host that runs a world. It never proxies a
# world's calls: a client asks `Universe.introduce` and then talks to the host.
#
# A connection starts at the same Gateway as a kernel's (caps.capnp): restore
# the scheduler's admin token (written to `<data dir>/admin.token`) to get a
# `Scheduler`. Tokens are shared by every scheduler of the cluster (their
# hashes live in etcd), so a token keeps working when another scheduler leads.
#
# NAMES. A universe id is a name (1-128 characters from [A-Za-z0-9._:-]),
# chosen by its creator and unique in the cluster; `name` is free text for
# people. A world id is a name unique within its universe; the world's name
# in the cluster is `<universe>/<world>` ("/" is in no name). Ids never change
# and are never reused while the universe or world exists.
#
# ERRORS travel as in caps.capnp (`aos.<Code>: message`). Codes of this file:
#   NotLeader         this scheduler stands by; the message ends with the
#                     leader's address ("leader: tcp:HOST:PORT", or "leader:
#                     none" during an election): retry there
#   UnknownUniverse, UniverseExists, UniverseNotEmpty
#   QuotaExceeded     a universe's world or byte quota would be exceeded
#   UnknownHost       no live host with that id
#   NoHost            no live host can take the world (capacity, labels, pin);
#                     the message says why
#   UnknownWorld      (caps.capnp) no such world in the universe
#   HostUnavailable   the world's host could not be reached for an introduction
# plus InvalidArgument, PermissionDenied and Revoked as everywhere.

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";
using World = import "world.capnp";

interface Scheduler extends(Caps.Held) {
  # The cluster's admin capability.

  status @0 () -> (status :ClusterStatus);
  # Every scheduler, host and universe, and what each host runs. Served by
  # any scheduler, leading or not. Errors: none.

  createUniverse @1 (universeId :Text, name :Text, quota :Quota) -> (info :UniverseInfo);
  # Create a universe. Errors: InvalidArgument (bad id), UniverseExists, NotLeader.

  listUniverses @2 () -> (universes :List(UniverseInfo));
  # Every universe with its quota and usage. Errors: none.

  deleteUniverse @3 (universeId :Text) -> ();
  # Delete an empty universe (delete or move its worlds first); capabilities
  # minted for it fail from their next call. Errors: UnknownUniverse,
  # UniverseNotEmpty, NotLeader.

  universe @4 (universeId :Text) -> (universe :Universe, revoker :Caps.Revoker);
  # A capability for one universe only, and its revoker: hand it (saved as
  # a token) to a tenant. Errors: UnknownUniverse.

  setQuota @5 (universeId :Text, quota :Quota) -> (info :UniverseInfo);
  # Change a universe's quota; existing worlds stay. Errors: UnknownUniverse, NotLeader.

  join @6 (host :HostAdvert, kernelToken :Text) -> (etcd :Text, leaseTtl :UInt32);
  # Called by a host kernel's agent (`aos-kernel --scheduler ADDR`) as it
  # starts: `kernelToken` is a token for a delegated Kernel capability of that
  # host, through which the scheduler later creates worlds there and mints
  # world tokens for introductions. The answer names the etcd endpoint where
  # the host then holds its own lease (the host is live while its lease is).
  # Errors: InvalidArgument (bad host id or address).

  drain @7 (hostId :Text, draining :Bool) -> ();
  # Start (or stop) draining a host: it gets no new worlds and its worlds are
  # moved elsewhere (worlds of a host without shared storage cannot move and
  # stay). Idempotent. Errors: InvalidArgument, NotLeader.

  move @8 (universeId :Text, worldId :Text, toHost :Text) -> (placement :Placement);
  # Move one world to a host now ("" = wherever placement puts it). Returns
  # the new placement; the world serves there once the host has acquired it
  # (`where` shows `moving` until then). Errors: UnknownWorld, UnknownHost,
  # NoHost (not eligible there: labels, capacity, pin, or its host has no
  # shared storage), NotLeader.

  history @9 (beforeSeq :UInt64, afterSeq :UInt64, limit :UInt32) -> (entries :List(HistoryEntry));
  # The scheduling history, newest first: placements, moves and failovers,
  # each written in the same etcd transaction as the placement it records.
  # Only the last 512 are kept (etcd holds coordination state, not logs;
  # the scheduler's metrics count them all). Entries with
  # afterSeq < seq < beforeSeq (beforeSeq 0 = no bound), at most `limit`
  # (1..512): page back with beforeSeq = the last seq seen, follow new ones
  # with afterSeq = the newest. Served by any scheduler. Errors: none.

  readOnly @10 () -> (scheduler :Scheduler, revoker :Caps.Revoker);
  # The same view without any write: its mutations (and those of the
  # Universe capabilities it mints) fail with PermissionDenied, and its
  # introductions carry read-only World tokens. For dashboards and consoles.
}

interface Universe extends(Caps.Held) {
  # One universe's worlds. Minted by Scheduler.universe. Nothing reached
  # through it can touch another universe.

  info @0 () -> (info :UniverseInfo);
  # Errors: UnknownUniverse (deleted since).

  createWorld @1 (manifest :Text, modules :List(World.Module), worldId :Text, name :Text,
                  labels :List(Label), pin :Text) -> (placement :Placement, info :World.WorldInfo);
  # Place a new world and create it on its host (the arguments are those of
  # Worlds.create in world.capnp). `labels`: a host must carry all of them;
  # `pin`: the host it must run on ("" = any). `worldId` "" picks a fresh id.
  # Errors: QuotaExceeded, NoHost, HostUnavailable, InvalidArgument (id taken,
  # bad labels) and every error of Worlds.create, NotLeader.

  listWorlds @2 () -> (worlds :List(Placement));
  # Where every world of the universe is. Errors: none.

  where @3 (worldId :Text) -> (placement :Placement);
  # Where one world is. Errors: UnknownWorld.

  introduce @4 (worldId :Text) -> (introduction :Introduction);
  # The host that runs the world and a token for that world on that host:
  # connect to `address`, restore `token` through its Gateway, and talk to
  # the World directly. When the world moves the token stops working there
  # (the old host no longer has the world); ask again. Errors: UnknownWorld,
  # HostUnavailable (no live host runs it now: it is being placed or moved;
  # retry), NotLeader.

  deleteWorld @5 (worldId :Text) -> ();
  # Forget a world: it is no longer placed, listed or counted against the
  # quota. Its history stays in its host's (or the shared) storage.
  # Errors: UnknownWorld, NotLeader.
}

struct Quota {
  worlds @0 :UInt32;   # most worlds at once; 0 = no limit
  bytes @1 :UInt64;    # most stored bytes (journals and CAS, as hosts measure them); 0 = no limit
}

struct UniverseInfo {
  universeId @0 :Text;
  name @1 :Text;
  quota @2 :Quota;
  worlds @3 :UInt32;        # worlds now
  storedBytes @4 :UInt64;   # as last reported by the hosts
  createdAtMs @5 :Int64;
}

struct Label {
  key @0 :Text;
  value @1 :Text;
}

struct HostAdvert {
  hostId @0 :Text;          # a name, unique in the cluster and stable across restarts
  address @1 :Text;         # where clients reach its Gateway: unix:PATH, tcp:HOST:PORT or tls:HOST:PORT
  capacity @2 :Float64;     # total world load it may run (a world's default load is 1)
  labels @3 :List(Label);
  storage @4 :Text;         # its shared storage URL, "" = local RocksDB only
  health @5 :Text;          # HOST:PORT of its gRPC health endpoint, "" = none
}

struct Placement {
  universeId @0 :Text;
  worldId @1 :Text;
  hostId @2 :Text;          # "" = waiting for a host (see `reason`)
  address @3 :Text;         # the host's address ("" when not live)
  epoch @4 :UInt64;         # bumped each time the world changes host
  state @5 :Text;           # running | moving | waiting
  reason @6 :Text;          # why it waits, when it does
  name @7 :Text;
  labels @8 :List(Label);
  pin @9 :Text;
}

struct Introduction {
  hostId @0 :Text;
  address @1 :Text;         # the host's Gateway
  token @2 :Text;           # restores a World capability for this world on that host
  epoch @3 :UInt64;         # the placement epoch this introduction is for
}

struct HistoryEntry {
  seq @0 :UInt64;           # increasing (the leader's clock in microseconds, or one past the last)
  atMs @1 :Int64;
  kind @2 :Text;            # placed | moved | failover
  universeId @3 :Text;
  worldId @4 :Text;
  fromHost @5 :Text;        # "" for a new world
  toHost @6 :Text;
  epoch @7 :UInt64;         # the placement epoch it started
  reason @8 :Text;          # created, by command, drain, rebalance, host X is not live, ...
}

struct SchedulerInfo {
  id @0 :Text;
  address @1 :Text;
  leading @2 :Bool;
  pid @3 :UInt32;
}

struct HostInfo {
  hostId @0 :Text;
  address @1 :Text;
  capacity @2 :Float64;
  labels @3 :List(Label);
  storage @4 :Text;
  draining @5 :Bool;
  load @6 :Float64;         # placed load
  worlds @7 :UInt32;        # worlds placed on it
  running @8 :UInt32;       # worlds it reports running
  pid @9 :UInt32;
  health @10 :Text;
}

struct ClusterStatus {
  leader @0 :SchedulerInfo;       # id "" during an election
  thisScheduler @1 :SchedulerInfo;
  hosts @2 :List(HostInfo);
  universes @3 :List(UniverseInfo);
  slots @4 :UInt32;
  etcdKeys @5 :UInt32;            # keys the cluster holds in etcd
  waiting @6 :UInt32;             # worlds without a live host
}
