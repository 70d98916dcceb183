@0x9df17ff00316b741;
# Capability plumbing shared by every kernel interface: the per-connection
# Gateway, the Held base interface, revokers and subscription handles.
#
# ERRORS. Every method below can fail. Failures travel as ordinary Cap'n
# Proto exceptions of type `failed`, whose description contains
#
#     aos.<Code>: <human readable message>
#
# where <Code> is one of the names in `ErrorCode` below. A client in any
# language finds the code by searching the description for "aos." and reading
# up to the next ": ". A connection that breaks surfaces as the Cap'n Proto
# `disconnected` exception type instead; it carries no AOS code.
#
# AUTHORITY. A connection starts with nothing but its Gateway. Everything else
# is reached by restoring a token (a bearer secret handed out of band, such as
# the admin token the kernel writes to its data directory) or by calling a
# method on a capability already held. Every capability is backed by a
# *grant*; attenuating a capability derives a child grant with narrower
# scope, and revoking a grant breaks it and every grant derived from it, on
# every connection, immediately.

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Cxx = import "/capnp/c++.capnp";

enum ErrorCode {
  # The request itself is wrong.
  protocol @0;          # generic malformed request
  invalidArgument @1;   # a field has a bad value (bad id, bad hash text, ...)
  payloadTooLarge @2;   # data exceeds a kernel limit; see Kernel.status limits
  # Capabilities.
  invalidToken @3;      # token unknown, malformed or dropped
  revoked @4;           # this capability or one of its ancestors was revoked
  permissionDenied @5;  # the capability exists but its scope does not cover the call
  notSaveable @6;       # Gateway.save got a capability this kernel did not mint
  # CAS.
  blobNotFound @7;
  corruptBlob @8;       # stored bytes no longer hash to their address
  # Journal.
  unknownWorld @9;      # no such world (world.capnp), or no such raw journal (journal.capnp:
                        # nothing was ever appended to it); one code for both, kept for the wire
  seqConflict @10;      # expectedSeq is not the journal's next sequence number
  staleEpoch @11;       # the writer's epoch is older than the journal's
  # Everything else.
  internal @12;         # a kernel bug; the kernel logs details, the caller gets an id
  # Limits per connection (calls in flight, subscriptions, uploads; see docs/security.md).
  resourceExhausted @13;
  # Shared storage (aos-kernel --storage; docs/storage.md).
  worldMoved @14;         # the world is not on this kernel any more (released, or held by another
                          # kernel: the message names its host and address); an UnknownWorld
  storage @15;            # the object store refused a request (bad bucket, credentials, a corrupt object)
  storageUnavailable @16; # the object store could not be reached or kept failing; a write's outcome is unknown
  fenced @17;             # a newer writer fenced this kernel's log: it stops acknowledging
  ownershipLost @18;      # the world's head names another owner
}
# Wire names are the enumerant names with the first letter upper-cased,
# e.g. `aos.StaleEpoch: ...`.

enum CapKind {
  kernel @0;
  cas @1;
  journal @2;
  timers @3;
  mailbox @4;
  revoker @5;
  worlds @6;
  world @7;
  scheduler @8;   # scheduler.capnp: a cluster's admin capability
  universe @9;    # scheduler.capnp: one universe of a cluster
}

struct CapInfo {
  # What a capability is and what it may do. Purely descriptive: holding a
  # CapInfo grants nothing.
  kind @0 :CapKind;
  grantId @1 :Text;      # stable id of the grant behind the capability
  universe @2 :Text;     # "" for the kernel admin capability
  readOnly @3 :Bool;     # cas, journal: no writes
  world @4 :Text;        # journal: the one raw journal it may touch, "" = any; world: the world
  sendTo @5 :Text;       # mailbox: "*" any, "" none, else exactly this mailbox
  receiveFrom @6 :Text;  # mailbox: same rules, for subscribe
  description @7 :Text;  # one line for people, e.g. "journal universe=u1 name=w7 read-only"
}

interface Held {
  # Base of every capability the kernel mints (Kernel, Cas, Journal, Timers,
  # Mailbox, Revoker). Only kernel-minted Held capabilities can be saved.

  info @0 () -> (info :CapInfo);
  # Describe this capability. Errors: Revoked.

  claim @1 (nonce :Data) -> ();
  # Internal to the kernel: Gateway.save calls this on the capability it is
  # handed to recognise it as its own. Clients have no reason to call it;
  # doing so has no effect beyond a wasted round trip.
}

interface Revoker extends(Held) {
  # Returned next to every minted or attenuated capability. Whoever holds it
  # can revoke that capability; it can be saved like any other.

  revoke @0 () -> ();
  # Revoke the target grant and, transitively, every grant derived from it.
  # Idempotent. Live capabilities on every connection fail from the next call
  # with `Revoked`; tokens saved from them no longer restore. Subscriptions
  # (journal tails, mailbox subscriptions) made through them stop.
}

interface Handle {
  # A subscription. Calling cancel(), or dropping the last reference to the
  # handle, ends it. Errors: none.
  cancel @0 () -> ();
}

interface Gateway {
  # The bootstrap capability of every connection. A fresh Gateway is made per
  # connection and holds no authority of its own.

  restore @0 (token :Text) -> (cap :Held, info :CapInfo);
  # Exchange a token for the capability it was saved from. Cast `cap` to the
  # interface `info.kind` names. Tokens are text of the form
  # "aos1_<43 base64url chars>" (256 random bits). Errors: InvalidToken
  # (unknown, malformed or dropped), Revoked.

  save @1 (cap :Held) -> (token :Text);
  # Mint a new token for a capability this connection holds. The token stays
  # valid across connections and kernel restarts until dropped or revoked.
  # The kernel stores only a hash of it: a lost token cannot be recovered.
  # Each call mints a different token. Errors: NotSaveable (not minted by this
  # kernel), Revoked.

  drop @2 (token :Text) -> ();
  # Forget a token: it no longer restores. Capabilities already restored from
  # it keep working (use a Revoker to stop those). Idempotent for tokens that
  # were dropped already. Errors: InvalidToken (malformed).
}
