@0xb703feb3ea2233fa;
# The baseline for bench/: the cheapest possible pycapnp calls between two
# processes, served by bench/echo_server.py. Kernel figures are reported as
# ratios to `echo`; the two append-shaped methods split the gap between echo
# and the kernel's Journal.append into "wire shape", "deferred reply" and
# "kernel work + disk".

interface Echo {
  echo @0 (data :Data) -> (data :Data);
  # Return the bytes unchanged.

  append @1 (world :Text, expectedSeq :UInt64, epoch :UInt64, records :List(Data)) -> (seq :UInt64);
  # Shaped exactly like Journal.append (journal.capnp). Copies the records
  # out of the message like the kernel does, stores nothing, replies at once
  # with expectedSeq.

  appendGrouped @2 (world :Text, expectedSeq :UInt64, epoch :UInt64, records :List(Data)) -> (seq :UInt64);
  # Like `append`, but the reply waits for a group turn run exactly like the
  # kernel's GroupCommitter (queue, wake-up event, one worker thread), whose
  # write is a no-op: the cost of deferring replies, without the disk.
}
