@0xb1603beab9c7f7de;
# The admin capability of one aos-kernel. The kernel writes a token for it to
# `<data dir>/admin.token` (mode 0600) on first start; restore that token
# through the Gateway (caps.capnp) to get a Kernel. Errors travel as
# described in caps.capnp (`aos.<Code>: message`).

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";
using import "cas.capnp".Cas;
using import "journal.capnp".Journal;
using import "timers.capnp".Timers;
using import "mailbox.capnp".Mailbox;
using import "world.capnp".Worlds;

interface Kernel extends(Caps.Held) {
  # Each mint returns a fresh capability for one universe (universe ids are
  # 1-128 characters from [A-Za-z0-9._:-]; universes need no creation) and a
  # revoker for it. Errors for all mints: InvalidArgument (bad universe id).

  cas @0 (universe :Text) -> (cas :Cas, revoker :Caps.Revoker);
  journal @1 (universe :Text) -> (journal :Journal, revoker :Caps.Revoker);
  timers @2 (universe :Text) -> (timers :Timers, revoker :Caps.Revoker);
  mailbox @3 (universe :Text) -> (mailbox :Mailbox, revoker :Caps.Revoker);

  status @4 () -> (status :KernelStatus);
  # A snapshot of the kernel's state and limits. Errors: none.

  worlds @5 (universe :Text) -> (worlds :Worlds, revoker :Caps.Revoker);
  # The worlds of a universe (world.capnp).

  delegate @6 () -> (kernel :Kernel, revoker :Caps.Revoker);
  # A Kernel capability with the same authority, revocable on its own: hand
  # it (saved as a token) to an operator or a tool instead of the admin token.

  universes @7 () -> (universes :List(UniverseInfo));
  # Every universe that has hosted worlds or CAS blobs, with its counts.
  # Errors: none.

  deliverPortal @8 (universe :Text, fromWorld :Text, toWorld :Text, messageId :Text,
                    eventSchema :Text, value :Data) -> (accepted :Bool);
  # Host to host (a cluster's portal mail, docs/scheduler.md "Cross-host
  # messages"): put a portal event (value: canonical CBOR) into world
  # `universe/toWorld`'s inbox on this kernel. accepted is false when this
  # messageId reached that inbox before (the sender retries with the same id:
  # at-least-once on the wire, exactly once as the world sees it). fromWorld is
  # `UNIVERSE/WORLD`. Errors: WorldMoved (the world is not here: ask where it is
  # now and send again), InvalidArgument (bad names, value not CBOR),
  # PermissionDenied (not a Kernel capability), PayloadTooLarge.
}

struct UniverseInfo {
  name @0 :Text;
  worlds @1 :UInt64;
  awake @2 :UInt64;
  quarantined @3 :UInt64;     # hibernated = worlds - awake - quarantined
  events @4 :UInt64;          # events its worlds journaled since the kernel started
  receipts @5 :UInt64;        # effect receipts its worlds journaled since the kernel started
  casBytes @6 :UInt64;        # bytes in its CAS (valid when casCounted)
  casBlobs @7 :UInt64;
  casCounted @8 :Bool;        # false while the kernel's first count of CAS runs (a scan at first ask)
}

struct KernelStatus {
  version @0 :Text;
  startedAtMs @1 :Int64;
  dataDir @2 :Text;
  connections @3 :UInt32;       # open client connections
  worlds @4 :UInt64;            # every journal across all universes: raw journals
                                # (journal.capnp) plus one per hosted world. The
                                # name is kept for wire compatibility; read
                                # hostedWorlds and rawJournals instead.
  commitTurns @5 :UInt64;       # synced group-commit writes since start
  committedRecords @6 :UInt64;  # journal records committed since start
  limits @7 :Limits;
  hostedWorlds @8 :UInt64;      # worlds (world.capnp) across all universes, from the world registry
  rawJournals @9 :UInt64;       # raw journals of the Journal service across all universes
}

struct Limits {
  maxMessageBytes @0 :UInt64;      # largest Data in one call
  maxBlobBytes @1 :UInt64;         # largest blob via upload
  maxRecordsPerAppend @2 :UInt32;
  maxRecordsPerRead @3 :UInt32;
}
