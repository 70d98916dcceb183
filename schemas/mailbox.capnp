@0xff79d893e8e68943;
# Durable mailboxes, scoped per universe. Errors travel as described in
# caps.capnp (`aos.<Code>: message`).
#
# Delivery is at least once and deduplicated by message id: a message id is
# accepted once per mailbox, ever, so resending after a timeout is safe, and
# a message is removed from the mailbox only after a subscriber's `deliver`
# returned. A subscriber sees a message twice only if the kernel crashed
# between the subscriber returning and the removal being synced; `attempt`
# then counts up, and the message id lets the receiver drop the repeat.
# Mailbox names are 1-128 characters from [A-Za-z0-9._:-].

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";

interface Mailbox extends(Caps.Held) {

  send @0 (to :Text, messageId :Text, payload :Data) -> (accepted :Bool);
  # Enqueue durably. `accepted` is false when `messageId` was already
  # accepted by that mailbox (nothing changes). Errors: PermissionDenied
  # (the capability may not send to `to`), InvalidArgument, PayloadTooLarge.

  subscribe @1 (mailbox :Text, subscriber :MailboxSubscriber) -> (handle :Caps.Handle);
  # Deliver queued and future messages of `mailbox` to `subscriber`, oldest
  # first, in batches, one batch in flight. One subscriber per mailbox at a
  # time: a new subscription replaces the old one. Ends like Journal.tail.
  # Errors: PermissionDenied (may not receive from `mailbox`), InvalidArgument.

  attenuate @2 (sendTo :Text, receiveFrom :Text) -> (mailbox :Mailbox, revoker :Caps.Revoker);
  # Narrow the capability. Each pattern is "*" (any mailbox), "" (none) or
  # one mailbox name; it must be within the current scope. A send-only cap is
  # attenuate("*", ""). Errors: PermissionDenied (widening).

  pending @3 (mailbox :Text) -> (count :UInt64);
  # Messages waiting in `mailbox`. Errors: PermissionDenied, InvalidArgument.
}

struct Message {
  mailbox @0 :Text;
  messageId @1 :Text;
  payload @2 :Data;
  sentAtMs @3 :Int64;     # kernel clock when accepted
  attempt @4 :UInt32;     # 1 on first delivery
}

interface MailboxSubscriber {
  deliver @0 (messages :List(Message)) -> ();
  # Returning acknowledges the whole batch; throwing leaves it queued for
  # the next subscriber and ends this subscription.
}
