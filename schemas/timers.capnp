@0x9b360696e2bb02bf;
# Durable timers, scoped per universe. Errors travel as described in
# caps.capnp (`aos.<Code>: message`).
#
# A timer that comes due is delivered as a message to a mailbox of the same
# universe (see mailbox.capnp): the timer's deletion and the message's
# enqueueing are one atomic write, so a timer fires exactly once even across
# crashes. A timer that came due while the kernel was down fires right after
# the kernel starts again.

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";

interface Timers extends(Caps.Held) {

  schedule @0 (deliverAtMs :Int64, key :Text, payload :Data, target :Text) -> ();
  # Deliver `payload` to mailbox `target` at `deliverAtMs` (Unix time in
  # milliseconds; a time in the past fires at once). The message id is
  # "timer:<key>:<deliverAtMs>". Scheduling an existing key replaces that
  # timer. Durable on return. Keys and mailbox names are 1-128 characters
  # from [A-Za-z0-9._:-]. Errors: InvalidArgument, PayloadTooLarge.

  cancel @1 (key :Text) -> (cancelled :Bool);
  # Cancel a pending timer. `cancelled` is false when no such timer was
  # pending (never scheduled, already fired or cancelled). Durable on return.
  # Errors: InvalidArgument.

  pending @2 (limit :UInt32) -> (timers :List(PendingTimer));
  # Pending timers of this universe, soonest first (at most `limit`,
  # 0 = 1000).
}

struct PendingTimer {
  key @0 :Text;
  deliverAtMs @1 :Int64;
  target @2 :Text;
  size @3 :UInt32;   # payload bytes
}
