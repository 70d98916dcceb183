"""A raw Cap'n Proto RPC peer for sending the kernel hand-built, malformed calls.

pycapnp's client never sends a struct where the schema has Text, so these
tests speak the RPC protocol (``capnp/rpc.capnp``) themselves: they build a
``Message`` with pycapnp, serialise it, and patch individual pointer words
before the bytes hit the socket. Only the parts the tests need are here:
bootstrap, calls (on an import or on a promised answer), release, and reading
each ``Return``.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

import capnp

from aos.schemas import caps_capnp

_CAPNP_DIR = os.path.dirname(capnp.__file__)
rpc_capnp = capnp.load(os.path.join(_CAPNP_DIR, "rpc.capnp"), imports=[os.path.dirname(_CAPNP_DIR)])
probe_capnp = capnp.load(os.path.join(os.path.dirname(__file__), "wire_probe.capnp"))

# what must never reach a client: a Python traceback, a source location, a native address
LEAKS = re.compile(r"Traceback|File \"|0x[0-9a-fA-F]{4,}|\.py\b|\.c\+\+:|\.pyx\b")
TYPED = re.compile(r"aos\.[A-Z][A-Za-z]+: \S")

GATEWAY_ID = caps_capnp.Gateway.schema.node.id
PROBE_POINTERS = probe_capnp.Probe.schema.node.struct.pointerCount


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for one question: results, an exception, or the connection's end."""

    kind: str  # results | exception | abort | closed
    text: str = ""  # exception reason or abort reason
    exception_type: str = ""
    cap_ids: tuple[int, ...] = ()  # senderHosted export ids in the results' cap table


def pointer_slots(schema: Any) -> dict[str, tuple[int, str]]:
    """Field name -> (pointer slot, type) for every pointer field of a struct schema ("list:struct" for lists)."""
    pointers = {"text", "data", "list", "struct", "interface", "anyPointer"}
    out = {}
    for f in schema.node.struct.fields:
        kind = str(f.slot.type.which()) if f.which() == "slot" else ""
        if kind in pointers:
            if kind == "list":
                kind += ":" + str(f.slot.type.list.elementType.which())
            out[f.name] = (f.slot.offset, kind)
    return out


# --- pointer words (see the encoding spec) -------------------------------------------------------
def struct_pointer(offset: int, data_words: int, pointers: int) -> int:
    return ((offset & 0x3FFFFFFF) << 2) | (data_words << 32) | (pointers << 48)


def list_pointer(offset: int, element_size: int, count: int) -> int:
    return 1 | ((offset & 0x3FFFFFFF) << 2) | (element_size << 32) | (count << 35)


def far_pointer(segment: int, offset: int = 0) -> int:
    return 2 | (offset << 3) | (segment << 32)


def capability_pointer(index: int) -> int:
    return 3 | (index << 32)


class Patchable:
    """One serialised single-segment message whose words can be rewritten."""

    def __init__(self, message: Any) -> None:
        raw = message.to_bytes()
        (count,) = struct.unpack_from("<I", raw, 0)
        assert count == 0, "build probes small enough for one segment"
        self.data = bytearray(raw)
        self.base = 8  # one segment: a 4-byte count and a 4-byte size

    @property
    def words(self) -> int:
        return (len(self.data) - self.base) // 8

    def word(self, index: int) -> int:
        return struct.unpack_from("<Q", self.data, self.base + 8 * index)[0]

    def set_word(self, index: int, value: int) -> None:
        struct.pack_into("<Q", self.data, self.base + 8 * index, value & (2**64 - 1))

    def find(self, needle: bytes) -> int:
        at = self.data.find(needle, self.base)
        assert at >= 0 and (at - self.base) % 8 == 0, "marker not found word-aligned"
        return (at - self.base) // 8

    def pointer_to(self, target: int, upper: int) -> int:
        """The index of the pointer to word ``target`` whose upper half is ``upper``.

        The upper half (a struct's section sizes, a list's element size and
        count) tells a real pointer from a data word that merely looks like one.
        """
        for i in range(self.words):
            w = self.word(i)
            if w & 3 not in (0, 1) or w >> 32 != upper:
                continue
            offset = (w >> 2) & 0x3FFFFFFF
            if offset & 0x20000000:
                offset -= 1 << 30
            if i + 1 + offset == target:
                return i
        raise AssertionError(f"no pointer targets word {target}")

    def pointer_to_data(self, needle: bytes) -> int:
        """The index of the Data pointer whose bytes are ``needle``."""
        return self.pointer_to(self.find(needle), 2 | (len(needle) << 3))

    def replace(self, old: bytes, new: bytes) -> None:
        assert len(old) == len(new) and self.data.count(old) == 1
        self.data = self.data.replace(old, new)


def marker(slot: int) -> bytes:
    return f"MARK{slot:04d}".encode()


class RawPeer:
    """A Cap'n Proto two-party peer on a unix socket, driven by hand."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buffer = b""
        self._next_question = 0
        self.replies: dict[int, Reply] = {}
        self.closed: Reply | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sending ---------------------------------------------------------------------------------
    def question(self) -> int:
        self._next_question += 1
        return self._next_question

    def send_bytes(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the kernel hung up; the reply (abort or EOF) says why

    def bootstrap(self) -> int:
        """Ask for the Gateway; returns the question id whose answer is it."""
        q = self.question()
        msg = rpc_capnp.Message.new_message()
        msg.init("bootstrap").questionId = q
        self.send_bytes(msg.to_bytes())
        return q

    def gateway_import(self) -> int:
        """Bootstrap and wait: the Gateway's export id on this connection."""
        reply = self.wait(self.bootstrap())
        assert reply.kind == "results" and reply.cap_ids, reply
        return reply.cap_ids[0]

    def call_message(self, target: tuple[str, Any], interface_id: int, method_id: int) -> tuple[int, Any]:
        """A Call message (not yet sent) and its question id.

        ``target`` is ``("import", id)`` or ``("answer", (question, [pointer fields]))``.
        """
        q = self.question()
        msg = rpc_capnp.Message.new_message()
        call = msg.init("call")
        call.questionId = q
        call.interfaceId = interface_id
        call.methodId = method_id
        kind, value = target
        if kind == "import":
            call.target.importedCap = value
        else:
            question, fields = value
            promised = call.target.init("promisedAnswer")
            promised.questionId = question
            ops = promised.init("transform", len(fields))
            for i, field in enumerate(fields):
                ops[i].getPointerField = field
        return q, msg

    def send(self, msg: Any) -> None:
        self.send_bytes(msg.to_bytes())

    def call(self, target: tuple[str, Any], interface_id: int, method_id: int, params: Any = None) -> int:
        q, msg = self.call_message(target, interface_id, method_id)
        if params is not None:
            msg.call.params.content = params
        self.send(msg)
        return q

    def release(self, import_id: int, count: int = 1) -> None:
        msg = rpc_capnp.Message.new_message()
        release = msg.init("release")
        release.id = import_id
        release.referenceCount = count
        self.send(msg)

    # --- receiving -------------------------------------------------------------------------------
    def _read(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _read_message(self) -> bytes | None:
        head = self._read(4)
        if head is None:
            return None
        segments = struct.unpack("<I", head)[0] + 1
        table = self._read(4 * segments + (4 if segments % 2 == 0 else 0))
        if table is None:
            return None
        sizes = struct.unpack_from(f"<{segments}I", table)
        body = self._read(8 * sum(sizes))
        if body is None:
            return None
        return head + table + body

    def wait(self, question: int) -> Reply:
        """The reply to ``question``: its Return, or the abort/EOF that ended the connection."""
        while question not in self.replies:
            if self.closed is not None:
                return self.closed
            raw = self._read_message()
            if raw is None:
                self.closed = Reply("closed")
                continue
            with rpc_capnp.Message.from_bytes(raw, traversal_limit_in_words=1 << 26) as msg:
                self._take(msg)
        return self.replies[question]

    def _take(self, msg: Any) -> None:
        which = msg.which()
        if which == "abort":
            self.closed = Reply("abort", msg.abort.reason, str(msg.abort.type))
        elif which == "return":
            ret = msg.__getattr__("return")
            if ret.which() == "results":
                ids = tuple(c.senderHosted for c in ret.results.capTable if c.which() == "senderHosted")
                self.replies[ret.answerId] = Reply("results", cap_ids=ids)
            elif ret.which() == "exception":
                self.replies[ret.answerId] = Reply("exception", ret.exception.reason, str(ret.exception.type))
            else:
                self.replies[ret.answerId] = Reply(str(ret.which()))
        # calls into us (none are expected), resolves, releases: ignored


def restore(peer: RawPeer, token: str) -> tuple[str, Any]:
    """Pipeline ``Gateway.restore(token)`` on a fresh bootstrap: a target for calls on the cap."""
    gateway = peer.bootstrap()
    q, msg = peer.call_message(("answer", (gateway, [])), GATEWAY_ID, 0)
    msg.call.params.content.as_struct(caps_capnp.Gateway.schema.methods["restore"].param_type).token = token
    peer.send(msg)
    return ("answer", (q, [0]))


# What a test can put in a pointer slot (or as the whole params) instead of what the schema says.
SLOT_VARIANTS = {
    "struct": "a struct pointer",
    "list": "a list of UInt64",
    "data": "Data without a NUL (where Text is)",
    "utf8": "Text that is not UTF-8",
    "capability": "a capability pointer with no cap table entry",
    "far": "a far pointer to a segment that does not exist",
    "outside": "a list pointer past the end of the message",
    "huge": "a list claiming 2^29-1 elements",
    "cycle": "a struct whose pointer points at itself",
}
ROOT_VARIANTS = ("list", "far", "capability", "outside")


def _pointer_word(variant: str, at: int, target: int) -> int:
    """The malformed pointer to write at word ``at``; ``target`` is a word we may point at."""
    offset = target - at - 1
    return {
        "struct": struct_pointer(offset, 1, 0),
        "list": list_pointer(offset, 5, 1),
        "capability": capability_pointer(0),
        "far": far_pointer(42),
        "outside": list_pointer(0x1FFFFF00, 2, 5),
        "huge": list_pointer(offset, 2, (1 << 29) - 1),
        "cycle": struct_pointer(offset, 0, 1),
    }[variant]


def malformed_call(peer: RawPeer, target: tuple[str, Any], interface_id: int, method_id: int,
                   slot: int | None, variant: str) -> int:
    """Send a call whose pointer ``slot`` of the params (None: the params pointer itself) is ``variant``.

    Every other field is left at its default. Returns the question id.
    """
    q, msg = peer.call_message(target, interface_id, method_id)
    probe = probe_capnp.Probe.new_message()
    use = 0 if slot is None else slot
    setattr(probe, f"p{use}", b"\xff\xfe\x00" if variant == "utf8" else marker(use))
    msg.call.params.content = probe
    patch = Patchable(msg)
    if variant not in ("data", "utf8"):
        mark = patch.find(marker(use))
        at = patch.pointer_to_data(marker(use))
        if slot is None:  # the params pointer: a struct pointer to the probe's first pointer slot
            at = patch.pointer_to(at - use, PROBE_POINTERS << 16)
        if variant == "cycle":
            patch.set_word(mark, struct_pointer(-1, 0, 1))  # the struct's one pointer: back to itself
        patch.set_word(at, _pointer_word(variant, at, mark))
    peer.send_bytes(bytes(patch.data))
    return q


def probe_call(peer: RawPeer, target: tuple[str, Any], interface_id: int, method_id: int,
               values: dict[int, bytes], caps: dict[int, int] | None = None,
               receiver_hosted: tuple[int, ...] = ()) -> int:
    """Send a call whose pointer slots hold ``values`` (bytes, NUL-terminate Text yourself) and
    whose ``caps`` slots hold capability pointers into a cap table of the kernel's own exports
    ``receiver_hosted``. Returns the question id."""
    q, msg = peer.call_message(target, interface_id, method_id)
    probe = probe_capnp.Probe.new_message()
    caps = caps or {}
    for slot, value in values.items():
        setattr(probe, f"p{slot}", value)
    for slot in caps:
        setattr(probe, f"p{slot}", marker(slot))
    msg.call.params.content = probe
    table = msg.call.params.init("capTable", len(receiver_hosted))
    for i, export in enumerate(receiver_hosted):
        table[i].receiverHosted = export
    patch = Patchable(msg)
    for slot, index in caps.items():
        patch.set_word(patch.pointer_to_data(marker(slot)), capability_pointer(index))
    peer.send_bytes(bytes(patch.data))
    return q
