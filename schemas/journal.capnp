@0x807ce3e2123f22fb;
# Raw journals: named, append-only logs of opaque records, scoped per
# universe. Errors travel as described in caps.capnp (`aos.<Code>: message`).
#
# A raw journal is a gap-free sequence of opaque records numbered from 0.
# It is not a world (world.capnp): hosted worlds keep their journals in a
# keyspace no Journal capability reaches, so a raw journal named "w1" and a
# world "w1" are unrelated. For historical reasons the parameters that name
# a journal are called `world`, the error for a journal that does not exist
# is UnknownWorld, and `list` returns `worlds`; the names are kept for wire
# and client compatibility and mean "journal name" throughout this file.
#
# Each journal also carries an *epoch*: the owner's fencing number. Appends
# carrying an older epoch than the journal's are refused, so a writer that
# lost ownership (a zombie host) can never write after the new owner has.
# Journal names are 1-128 characters from [A-Za-z0-9._:-].

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";

interface Journal extends(Caps.Held) {

  append @0 (world :Text, expectedSeq :UInt64, epoch :UInt64, records :List(Data)) -> (seq :UInt64);
  # Append records atomically to the journal named `world`. `expectedSeq`
  # must equal the journal's next sequence number (0 for a new journal, which
  # this call creates); `seq` is the number given to the first record, so the
  # records are seq .. seq+len-1. An `epoch` above the journal's raises the
  # journal's epoch to it (fencing older writers out); an equal one is the
  # normal case. The call returns only once the records are synced to disk.
  # Concurrent appends from all connections and journals (world journals
  # included) are committed together in one synced write per turn (group
  # commit), so many writers cost about as much as one. Errors: SeqConflict
  # (expectedSeq wrong; nothing written; read `head` and retry), StaleEpoch
  # (epoch below the journal's; nothing written), PermissionDenied
  # (read-only, or another journal than the capability's), InvalidArgument
  # (bad journal name, no records), PayloadTooLarge (more than
  # `maxRecordsPerAppend` records or `maxMessageBytes` bytes).

  read @1 (world :Text, fromSeq :UInt64, limit :UInt32) -> (records :List(Data), nextSeq :UInt64);
  # Read up to `limit` (capped at `maxRecordsPerRead`, 0 = the cap) durable
  # records starting at `fromSeq`; records[i] has sequence fromSeq+i.
  # `nextSeq` is the journal's next sequence number, so `fromSeq +
  # len(records) == nextSeq` means you are at the end. Errors: UnknownWorld
  # (no such journal), PermissionDenied, InvalidArgument.

  tail @2 (world :Text, fromSeq :UInt64, subscriber :JournalSubscriber) -> (handle :Caps.Handle);
  # Push every record from `fromSeq` on to `subscriber`: first what is already
  # durable, then new records as they are committed, in order, with no gaps.
  # At most one push is in flight per subscription (the subscriber's
  # returning is the flow control). The subscription ends when the handle is
  # cancelled or dropped, when a push fails, or when the capability is
  # revoked. Errors: UnknownWorld (no such journal), PermissionDenied,
  # InvalidArgument.

  head @3 (world :Text) -> (nextSeq :UInt64, epoch :UInt64);
  # The journal's next sequence number and epoch. Errors: UnknownWorld (no
  # such journal), PermissionDenied.

  fence @4 (world :Text, epoch :UInt64) -> (nextSeq :UInt64);
  # Raise the journal's epoch without appending (a new owner taking over);
  # creates the journal if needed. Durable on return. Errors: StaleEpoch
  # (epoch below the journal's), PermissionDenied (read-only or another
  # journal).

  list @5 (after :Text, limit :UInt32) -> (worlds :List(Text));
  # Raw journal names in this universe in byte order, starting after `after`
  # ("" for the first page). A capability restricted to one journal lists
  # only it. Hosted worlds are not listed (Worlds.list lists them).

  restrict @6 (world :Text, readOnly :Bool) -> (journal :Journal, revoker :Caps.Revoker);
  # Attenuate to one journal (`world` = "" keeps the current scope),
  # optionally read-only. A capability already restricted to one journal
  # cannot widen to another: PermissionDenied.
}

interface JournalSubscriber {
  # Implemented by the client and passed to Journal.tail.
  push @0 (seq :UInt64, records :List(Data)) -> ();
  # `records[i]` has sequence seq+i. Throwing ends the subscription.
}
