"""Object keys, and the journal-op keys a world's records travel under in a log.

The layout (relative to the configured prefix; every name is a validated AOS
name, so keys need no escaping)::

    logs/<log>/head                               LogHead (JSON), If-Match
    logs/<log>/<20-digit seq>                     LogBatch (CBOR), If-None-Match
    u/<universe>/worlds/<world>/head              WorldHead (JSON), If-Match
    u/<universe>/worlds/<world>/seg/<20-digit first seq>   Segment (CBOR), If-None-Match
    u/<universe>/worlds/<world>/ops/<20-digit first op>    OpSegment (CBOR), If-None-Match
    u/<universe>/cas/<sha256 hex>                 blob bytes, If-None-Match

Seqs are zero-padded to 20 digits (the width of 2**64) so S3's byte-ordered
LIST returns them in numeric order.
"""

from __future__ import annotations

from aos.errors import InvalidArgument
from aos.kernel.names import check_name, key, seq_key
from aos.kernel.store import Op

SEQ_DIGITS = 20
JOURNAL = "journal"  # the column family whose ops are world records (kernel/journal/store.py)


def seq_text(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}"


def parse_seq(name: str) -> int | None:
    """The seq of a ``<20 digits>`` key tail, or None for anything else (``head``)."""
    if len(name) == SEQ_DIGITS and name.isdigit():
        return int(name)
    return None


def log_prefix(log: str) -> str:
    return f"logs/{check_name(log, 'log id')}/"


def log_key(log: str, seq: int) -> str:
    return log_prefix(log) + seq_text(seq)


def log_head_key(log: str) -> str:
    return log_prefix(log) + "head"


def world_prefix(universe: str, world: str) -> str:
    return f"u/{check_name(universe, 'universe')}/worlds/{check_name(world, 'world')}/"


def world_head_key(universe: str, world: str) -> str:
    return world_prefix(universe, world) + "head"


def segment_prefix(universe: str, world: str) -> str:
    return world_prefix(universe, world) + "seg/"


def segment_key(universe: str, world: str, first: int) -> str:
    return segment_prefix(universe, world) + seq_text(first)


def op_segment_prefix(universe: str, world: str) -> str:
    return world_prefix(universe, world) + "ops/"


def op_segment_key(universe: str, world: str, first: int) -> str:
    return op_segment_prefix(universe, world) + seq_text(first)


def blob_key(universe: str, digest_hex: str) -> str:
    if len(digest_hex) != 64 or any(c not in "0123456789abcdef" for c in digest_hex):
        raise InvalidArgument(f"bad sha256 digest {digest_hex[:80]!r}")
    return f"u/{check_name(universe, 'universe')}/cas/{digest_hex}"


# --- world records inside a log batch ---------------------------------------------------------


def journal_op(universe: str, world: str, seq: int, record: bytes) -> Op:
    """The op ``JournalStore`` writes for a record, byte for byte, so a turn's batch goes to the log unchanged."""
    return Op(JOURNAL, seq_key(key(universe, world), seq), record)


def world_records(ops: tuple[Op, ...] | list[Op], universe: str, world: str) -> list[tuple[int, bytes]]:
    """The (seq, record) pairs of one world among a batch's ops, in op order.

    Names cannot contain NUL, so the NUL-terminated prefix matches exactly one
    world; the 8 bytes after it are the big-endian seq.
    """
    prefix = key(universe, world)
    size = len(prefix) + 8
    found = []
    for op in ops:
        if op.family == JOURNAL and op.value is not None and len(op.key) == size and op.key.startswith(prefix):
            found.append((int.from_bytes(op.key[-8:], "big"), op.value))
    return found
