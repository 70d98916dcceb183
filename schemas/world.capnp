@0xd4dce286222d5be4;
# Worlds hosted by the kernel: create them from manifests, send events, read
# state and journals, snapshot and fork. Errors travel as described in
# caps.capnp (`aos.<Code>: message`); world-specific codes are Manifest,
# SchemaViolation, ModuleLoad, Nondeterminism, World (see docs/worlds.md).
#
# VALUES are JSON text. CBOR-only values map as: a byte string is
# {"$bytes": "<base64>"}; everything else is plain JSON. World ids follow the
# name rules of journal.capnp and are at most 100 characters.

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";

interface Worlds extends(Caps.Held) {
  # All worlds of one universe. Minted by Kernel.worlds.

  create @0 (manifest :Text, modules :List(Module), worldId :Text, name :Text) -> (world :World, info :WorldInfo);
  # Create a world from a manifest (JSON text, the format in docs/worlds.md).
  # WASM modules are named in the manifest by hash ("sha256:<hex>"); their
  # bytes come in `modules` or must already be in this universe's CAS.
  # `worldId` "" picks a fresh id. The world starts at its genesis snapshot.
  # Errors: Manifest (with the path of the bad field), ModuleLoad,
  # InvalidArgument (id taken, module bytes mismatch), PermissionDenied (a
  # host.fs/host.exec grant outside the directories this kernel grants).

  open @1 (worldId :Text) -> (world :World);
  # Errors: UnknownWorld.

  list @2 () -> (worlds :List(WorldInfo));
  # Every world of the universe, awake or hibernated.

  fork @3 (worldId :Text, newId :Text, name :Text) -> (world :World, info :WorldInfo);
  # Snapshot `worldId` and start a new world from that state. The fork
  # re-issues the source's open effects under its own name.
  # Errors: UnknownWorld, InvalidArgument.

  unquarantine @4 (worldId :Text) -> (info :WorldInfo);
  # Let a quarantined world wake again (see WorldInfo.quarantined) and wake
  # it now; its waiting mail is then delivered. Idempotent: a world that is
  # not quarantined is just woken. If it fails to wake again it is
  # quarantined again and the call fails with WorldQuarantined and the reason.
  # Errors: UnknownWorld, WorldQuarantined, PermissionDenied (read-only cap).

  hibernate @5 (worldId :Text) -> (hibernated :Bool);
  # Snapshot a quiescent world and drop it from memory now, as the idle reaper
  # would. `hibernated` is false when it was asleep already or is busy (inputs
  # queued, effects running): nothing changed. Errors: UnknownWorld,
  # PermissionDenied (read-only cap).

  readOnly @6 () -> (worlds :Worlds, revoker :Caps.Revoker);
  # Attenuate: the same universe, but create, fork, unquarantine, hibernate,
  # and on the worlds it opens send, sendBatch, snapshot and setGrant fail with
  # PermissionDenied. Reads (list, state, journal, tail, describe, grants,
  # effects) work. A read-only capability stays read-only.

  release @7 (worldId :Text) -> (placement :WorldLocation);
  # Hand a world over (a kernel on shared storage, `aos-kernel --storage`):
  # stop taking its inputs, let its commits finish, stop its running effects
  # (their intents stay open and restart with the same idempotency keys
  # wherever it wakes next), write everything it committed to its own objects
  # and its head "released", and drop it here. Returns once the world is
  # durable in shared storage. Afterwards every call on it at this kernel fails
  # with WorldMoved, naming the kernel that holds it once one acquired it.
  # Errors: UnknownWorld, WorldMoved, InvalidArgument (an embedded kernel has
  # nowhere to release to), StorageUnavailable, PermissionDenied (read-only).

  acquire @8 (worldId :Text, takeOver :Bool) -> (info :WorldInfo, placement :WorldLocation);
  # Take a world on shared storage and wake it here. A released world takes
  # two requests. One another kernel holds without having released it (a
  # dead host's) is taken only with `takeOver`, which fences that kernel's
  # whole log first: it can never append again and stops, so a live kernel
  # loses all its worlds until it restarts. Without `takeOver` such a world
  # is WorldMoved (naming the holder), also when another kernel won the race.
  # Open intents restart, timers set before the move fire here, waiting mail
  # is delivered. Idempotent for a world this kernel holds. A kernel also
  # acquires a released world by itself when it gets an event for it
  # (World.send, portal mail), unless it released that world itself.
  # Errors: UnknownWorld, WorldMoved, InvalidArgument (embedded kernel),
  # Fenced, StorageUnavailable, PermissionDenied (read-only).
}

struct WorldLocation {
  # Where a world lives on shared storage: its head's owner.
  host @0 :Text;       # the holding kernel's host id; "" = released (nobody holds it)
  address @1 :Text;    # where that kernel listens, as it says in the head
  epoch @2 :UInt64;    # goes up by one with every acquire
  previous @3 :Text;   # acquire: the host that held it before ("" = it was released or new)
  journalHeight @4 :UInt64;
}

struct Module {
  hash @0 :Text;   # "sha256:<hex>" of `wasm`
  wasm @1 :Data;
}

struct WorldInfo {
  worldId @0 :Text;
  name @1 :Text;
  manifestHash @2 :Text;
  awake @3 :Bool;          # false = hibernated (state in a snapshot, no memory held)
  journalHeight @4 :UInt64;
  lastEventMs @5 :Int64;   # 0 when not known (hibernated since start)
  snapshot @6 :Text;       # CAS address of the latest snapshot
  forkedFrom @7 :Text;
  quarantined @8 :Text;    # why the kernel stopped waking this world ("" = not
                           # quarantined): it failed to wake (a module that no longer
                           # loads or is no longer allowed, a replay that diverged).
                           # Its calls fail with WorldQuarantined and its mail waits
                           # until Worlds.unquarantine.
  paused @10 :Bool;        # World.pause: it takes no inputs until World.resume
  queued @11 :UInt32;      # inputs waiting for it (its inbox mail; receipts held while paused);
                           # describe only, 0 in list
  released @9 :Bool;       # this kernel released the world (or lost it to another
                           # kernel on shared storage) and holds none of its state:
                           # its calls fail with WorldMoved. Listed so it is not lost
                           # from sight; the other fields are as of the release.
}

interface World extends(Caps.Held) {
  # One world. Every call wakes a hibernated world first.

  send @0 (eventSchema :Text, value :Text) -> (seq :UInt64, outcome :SendOutcome);
  # Send an event (value as JSON). Checked against the schema at the door: a
  # bad event is refused with SchemaViolation and never journaled. Returns
  # once the event and everything it caused are durable; `seq` is the
  # event's journal position and `outcome` what it caused (a workflow that
  # traps does not fail the call: the event stays journaled, the trapped
  # step is discarded, and the trap is reported here). Effects it emitted
  # are running when this returns. Errors: SchemaViolation, World.

  state @1 (workflow :Text, key :Text) -> (exists :Bool, value :Text);
  # The state of a workflow (`key` "" for unkeyed) or of one cell (`key` as
  # JSON). Errors: InvalidArgument (unknown workflow).

  cells @2 (workflow :Text) -> (keys :Text);
  # JSON list of the live cell keys of a keyed workflow.

  journal @3 (fromSeq :UInt64, limit :UInt32) -> (records :List(Text), nextSeq :UInt64);
  # Journal records as JSON objects {"at": journal position, "kind", ...the
  # record's fields (docs/worlds.md)}.

  tail @4 (fromSeq :UInt64, watcher :WorldWatcher, frames :Bool = true) -> (handle :Caps.Handle);
  # Push journal records (and, with `frames`, stream frames of running
  # effects) as they come.

  snapshot @5 () -> (address :Text, seq :UInt64);
  # Store the current state in CAS and journal a marker. Replay from the
  # marker gives the same state.

  describe @6 () -> (info :WorldInfo, traps :List(Text), workflows :List(WorkflowInfo));
  # Status, the most recent workflow traps (e.g. FuelExhausted), and the
  # world's workflows.

  readRaw @8 (fromSeq :UInt64, limit :UInt32) -> (records :List(Data), nextSeq :UInt64);
  # The journal records as stored: canonical CBOR, one record each (see
  # docs/worlds.md), for replay tools and other languages. A world's journal
  # is reachable only through its World capability.

  grants @9 () -> (grants :List(GrantInfo));
  # The world's grants (from its manifest) and whether each is active.

  setGrant @10 (name :Text, active :Bool) -> ();
  # Revoke (active = false) or restore one of the world's grants. Effects
  # through a revoked grant are settled with an error receipt "revoked"
  # instead of running; the change is durable. Errors: InvalidArgument
  # (no such grant).

  effects @11 () -> (effects :List(EffectInFlight));
  # The world's admitted effects that have no receipt yet.

  sendBatch @7 (events :List(Event)) -> (seqs :List(UInt64));
  # Send several events in one call, in order (the fast path for bulk
  # ingress). All are checked at the door first: if any is bad, none is sent
  # and the error names its index. Returns each event's journal position.

  # --- governance: the manifest changes only through these journaled steps
  # (docs/demiurge.md). Each step is an input record in the world's journal;
  # `apply` and `rollback` switch the manifest there, and replay switches at
  # the same record. A read-only World capability may only call `governance`
  # and `manifest`. Answers are JSON text.

  propose @12 (patch :Text, reason :Text) -> (proposal :Text);
  # Propose a change: `patch` is JSON {"ops": [{"op": "add"|"replace"|"remove",
  # "section": "schemas"|"modules"|"workflows"|"effects"|"grants"|"routing"|
  # "secrets", "name", "value"}], "base"?, "reason"?}. The patched manifest is
  # checked as Worlds.create checks one (wasm modules must already be in CAS).
  # No patch may add, change or drop a governance or universe grant.
  # Returns {proposal, status, base, manifest, address, diff, grants}.
  # Errors: PatchRejected (malformed, over 256 KiB or 256 ops, changes who
  # governs), Manifest (the path in the patched manifest), ModuleLoad,
  # PermissionDenied (a host.fs/host.exec grant outside the kernel's roots;
  # a read-only capability), InvalidArgument (a module not in CAS), Governance.

  shadow @13 (proposal :Text, events :List(Event), sample :UInt32) -> (report :Text);
  # Run the proposal on a fork of the world's current state against `events`
  # (empty: the last `sample` events of the journal, default 20), beside an
  # unpatched fork, and journal the outcome. The report: {ok, problems (traps,
  # schema violations, refused events and effects, state the new schemas
  # refuse, effects in flight it would orphan), state_changes, effects, grants
  # {added, dropped, changed}, diff, events, report (its CAS address)}.
  # Errors: Governance (unknown proposal, not proposed, base not current).

  approve @14 (proposal :Text, reason :Text) -> (info :Text);
  # Only a proposal whose latest shadow run found no problem, on the manifest
  # the world runs now. Errors: Governance.

  reject @15 (proposal :Text, reason :Text) -> (info :Text);

  apply @16 (proposal :Text) -> (info :Text);
  # Switch the world to an approved proposal's manifest, then snapshot it.
  # Errors: Governance (not approved, base not current, the state or effects
  # in flight do not fit the new manifest), PermissionDenied.

  rollback @17 (manifest :Text, reason :Text) -> (info :Text);
  # Switch back to an earlier manifest of this world ("" = the one before the
  # current), itself a journaled change. Errors: Governance.

  governance @18 () -> (history :Text);
  # {world, manifest, address, proposals: [...], history: [{op, proposal,
  # before, after, seq, by}]}.

  manifest @19 () -> (manifest :Text);
  # {manifest: the document the world runs now, hash, address}.

  pause @20 () -> (seq :UInt64, changed :Bool);
  # Stop the world taking inputs: events sent to it (send, sendBatch), timer
  # firings and portal messages wait in its inbox mailbox (durable, in
  # order), receipts of effects still running wait in its driver; nothing is
  # lost and nothing is applied. Journaled as a control record (replay
  # pauses at the same place); a paused world stays paused across restarts.
  # `seq` is that record's position (`changed` false: it was paused already,
  # seq is the journal height). Errors: PermissionDenied (read-only cap).

  resume @21 () -> (seq :UInt64, changed :Bool);
  # Journal the resume, then apply what waited, in the order it came.
}

struct GrantInfo {
  name @0 :Text;
  cap @1 :Text;        # host.fs, host.exec, http, llm, timer, blob, portal, cancel
  params @2 :Text;     # JSON
  active @3 :Bool;
}

struct WorkflowInfo {
  name @0 :Text;
  keyed @1 :Bool;   # one state per key (cells); read them with cells + state(key)
}

struct SendOutcome {
  # What one event caused, read from the records journaled right after it.
  # A kernel older than this field answers the default: steps = 0.
  steps @0 :UInt32;          # workflow steps the event reached: its routes, the
                             # routes of the domain events those steps emitted,
                             # and refusal receipts back to emitting cells
  traps @1 :List(TrapInfo);  # the steps that trapped (each step's changes discarded);
                             # traps = steps > 0 means nothing the event reached ran
  intents @2 :UInt32;        # effects admitted (journaled, now running)
  rejected @3 :UInt32;       # effects refused at admission (journaled as effect_rejected)
  queued @4 :Bool;           # the world is paused: the event waits in its inbox mailbox (seq = 0,
                             # nothing ran); World.resume delivers it
}

struct TrapInfo {
  workflow @0 :Text;
  key @1 :Text;        # the cell key as JSON; "" for an unkeyed workflow
  code @2 :Text;       # WorkflowTrap, FuelExhausted, SchemaViolation, ...
  message @3 :Text;
}

struct EffectInFlight {
  intentHash @0 :Text;
  effect @1 :Text;        # the manifest's name, e.g. sys/host.exec@1
  grant @2 :Text;
  workflow @3 :Text;      # the emitting workflow
  key @4 :Text;           # its cell key as JSON; "" for an unkeyed workflow
  running @5 :Bool;       # an adapter runs it now; false: waiting (a timer, a receipt by mail)
  startedAtMs @6 :Int64;  # when its adapter started (0 when waiting)
}

struct Event {
  eventSchema @0 :Text;
  value @1 :Text;   # JSON
}

interface WorldWatcher {
  record @0 (seq :UInt64, json :Text) -> ();
  frame @1 (intentHash :Text, json :Text) -> ();
  records @2 (fromSeq :UInt64, jsons :List(Text)) -> ();
  # The records at fromSeq, fromSeq + 1, ... in one call. A watcher that
  # does not implement it (UNIMPLEMENTED) gets `record` calls instead.
}
