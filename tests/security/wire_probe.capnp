@0xc7d1a8f2e49b3a61;
# Probes for tests/security/test_wire_*.py: a params struct whose pointer
# slots are all Data, so a test can put a marker in any slot and then rewrite
# that slot's pointer word into whatever malformed pointer it wants to send.

struct Probe {
  p0 @0 :Data;
  p1 @1 :Data;
  p2 @2 :Data;
  p3 @3 :Data;
  p4 @4 :Data;
  p5 @5 :Data;
}
