"""Malformed Cap'n Proto calls get a short typed error, never a traceback, and the kernel keeps serving.

A raw RPC peer (``wirekit``) sends hand-built messages that pycapnp's own
client never would: a struct, list, capability, far or out-of-bounds pointer
where the schema has Text, Data or a list, Text that is not UTF-8, a cycle,
a list claiming 2^29-1 elements, params that are not a struct at all. Every
method of every kernel interface is tried with each, and must answer
``aos.InvalidArgument: <field>: ...`` with no Python traceback, source path
or native address in the reply.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import wirekit as w  # noqa: E402

from aos.caps.gateway import GatewayImpl, HandleImpl, RevokerImpl  # noqa: E402
from aos.caps.held import HeldImpl  # noqa: E402
from aos.cli_world import load_bundle_doc  # noqa: E402
from aos.kernel.admin import KernelImpl  # noqa: E402
from aos.kernel.cas.server import BlobWriterImpl, CasImpl  # noqa: E402
from aos.kernel.client import Connection, run  # noqa: E402
from aos.kernel.host.server import WorldImpl, WorldsImpl  # noqa: E402
from aos.kernel.journal.server import JournalImpl  # noqa: E402
from aos.kernel.mailbox.server import MailboxImpl  # noqa: E402
from aos.kernel.rpc import _Remote  # noqa: E402
from aos.kernel.timers.server import TimersImpl  # noqa: E402
from aos.schemas import caps_capnp, cas_capnp, journal_capnp, kernel_capnp, mailbox_capnp, timers_capnp, world_capnp  # noqa: E402
from aos.testing import KernelProcess  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")

# every server class and the interface it serves
SERVERS: dict[str, tuple[type, Any]] = {
    "Gateway": (GatewayImpl, caps_capnp.Gateway),
    "Held": (HeldImpl, caps_capnp.Held),
    "Revoker": (RevokerImpl, caps_capnp.Revoker),
    "Handle": (HandleImpl, caps_capnp.Handle),
    "Kernel": (KernelImpl, kernel_capnp.Kernel),
    "Cas": (CasImpl, cas_capnp.Cas),
    "BlobWriter": (BlobWriterImpl, cas_capnp.BlobWriter),
    "Journal": (JournalImpl, journal_capnp.Journal),
    "Timers": (TimersImpl, timers_capnp.Timers),
    "Mailbox": (MailboxImpl, mailbox_capnp.Mailbox),
    "Worlds": (WorldsImpl, world_capnp.Worlds),
    "World": (WorldImpl, world_capnp.World),
}


def methods(interface: Any) -> list[tuple[int, int, str, Any]]:
    """(interface id, ordinal, name, param schema) for the interface's own methods and its bases'."""
    out = []
    for schema in [interface.schema, *interface.schema.superclasses]:
        for ordinal, name in enumerate(schema.method_names):
            out.append((schema.node.id, ordinal, name, schema.methods[name].param_type))
    return out


def variants_for(kind: str) -> list[tuple[str, bool]]:
    """The pointers worth sending where the schema has a field of ``kind``, and whether each is malformed there.

    Cap'n Proto reads a list of primitives (or of bytes) as a list of structs
    whose first field is that primitive, so for a struct list those arrive as
    well-formed (if meaningless) values: the reply must then be typed, but
    need not name the field.
    """
    skip = {"text": set(), "data": {"data", "utf8"}}.get(kind, {"utf8"})
    legal = {"list", "data"} if kind == "list:struct" else set()
    return [(v, v not in legal) for v in w.SLOT_VARIANTS if v not in skip]


def assert_clean(reply: w.Reply) -> None:
    assert not w.LEAKS.search(reply.text), reply.text


def assert_typed(reply: w.Reply, what: str) -> None:
    assert reply.kind == "exception", (what, reply)
    assert_clean(reply)
    assert w.TYPED.search(reply.text), (what, reply.text)


def assert_invalid(reply: w.Reply, field: str, what: str) -> None:
    assert_typed(reply, what)
    assert f"aos.InvalidArgument: {field}: " in reply.text, (what, reply.text)


@pytest.fixture(scope="module")
def wire_kernel() -> Iterator[dict[str, Any]]:
    """One kernel for the module, with a token for a capability of every interface."""
    with tempfile.TemporaryDirectory(prefix="aosw-", dir="/tmp") as data_dir:
        kernel = KernelProcess(data_dir).start()
        try:
            yield {"kernel": kernel, "tokens": run(_mint_tokens(kernel))}
        finally:
            kernel.kill()


async def _mint_tokens(kernel: KernelProcess) -> dict[str, str]:
    doc, wasm = load_bundle_doc(os.path.join(EXAMPLES, "counter"), None)
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        cas = await admin.cas("u")
        journal = await admin.journal("u")
        await journal.append("w", 0, 1, [b"first"])
        worlds = await admin.worlds("u")
        world, _ = await worlds.create(doc, wasm, "counter")
        return {
            "Kernel": kernel.admin_token,
            "Held": kernel.admin_token,
            "Cas": await cas.save(),
            "Journal": await journal.save(),
            "Timers": await (await admin.timers("u")).save(),
            "Mailbox": await (await admin.mailbox("u")).save(),
            "Worlds": await worlds.save(),
            "World": await world.save(),
            "Revoker": await cas.revoker.save(),  # type: ignore[union-attr]
        }


def _target(peer: w.RawPeer, name: str, tokens: dict[str, str]) -> tuple[str, Any]:
    """Where to send calls for interface ``name`` on this raw connection (pipelined, no waits)."""
    if name == "Gateway":
        return ("answer", (peer.bootstrap(), []))
    if name == "BlobWriter":
        cas = w.restore(peer, tokens["Cas"])
        return ("answer", (peer.call(cas, cas_capnp.Cas.schema.node.id, 4), [0]))  # Cas.upload
    if name == "Handle":
        journal = w.restore(peer, tokens["Journal"])
        gateway = peer.gateway_import()
        tail = journal_capnp.Journal.schema.method_names.index("tail")
        q = w.probe_call(peer, journal, journal_capnp.Journal.schema.node.id, tail, {0: b"w\x00"}, {1: 0}, (gateway,))
        return ("answer", (q, [0]))
    return w.restore(peer, tokens[name])


def _still_serving(kernel: KernelProcess) -> str:
    async def main() -> str:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            return await (await admin.cas("u")).put(b"alive")

    return run(main())


def test_every_schema_method_enters_through_the_guarded_entry() -> None:
    """Each method of each interface has a ``<name>_context`` entry from ``remote``, so pycapnp never decodes params itself."""
    for name, (cls, interface) in SERVERS.items():
        for _, _, method, _ in methods(interface):
            assert callable(getattr(cls, method + "_context", None)), f"{name}.{method} has no guarded entry"
            assert isinstance(_find_attr(cls, method), _Remote), f"{name}.{method} is not decorated with remote()"


def _find_attr(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_malformed_params_of_every_method_are_invalid_argument(wire_kernel: dict[str, Any], name: str) -> None:
    """Every pointer field of every method, sent as each malformed pointer, and params that are no struct, give InvalidArgument."""
    kernel, tokens = wire_kernel["kernel"], wire_kernel["tokens"]
    _, interface = SERVERS[name]
    held = caps_capnp.Held.schema.node.id  # Held's methods are checked once, on the kernel capability
    own = [m for m in methods(interface) if name == "Held" or m[0] != held]
    checked = 0
    with w.RawPeer(kernel.address.removeprefix("unix:")) as peer:
        target = _target(peer, name, tokens)
        for interface_id, ordinal, method, params in own:
            for field, (slot, kind) in w.pointer_slots(params).items():
                for variant, malformed in variants_for(kind):
                    q = w.malformed_call(peer, target, interface_id, ordinal, slot, variant)
                    what = f"{name}.{method}({field}={variant})"
                    if malformed:
                        assert_invalid(peer.wait(q), field, what)
                    else:
                        assert_typed(peer.wait(q), what)
                    checked += 1
            for variant in w.ROOT_VARIANTS:
                q = w.malformed_call(peer, target, interface_id, ordinal, None, variant)
                assert_invalid(peer.wait(q), "params", f"{name}.{method}(params={variant})")
                checked += 1
    assert own and checked >= len(own) * len(w.ROOT_VARIANTS)
    assert _still_serving(kernel).startswith("sha256:")


def test_malformed_values_nested_in_lists_are_invalid_argument(wire_kernel: dict[str, Any]) -> None:
    """Bad UTF-8 inside a list element, or a list element that is no Data, is InvalidArgument when the method reads it."""
    kernel, tokens = wire_kernel["kernel"], wire_kernel["tokens"]
    with w.RawPeer(kernel.address.removeprefix("unix:")) as peer:
        world = w.restore(peer, tokens["World"])
        schema = world_capnp.World.schema
        q, msg = peer.call_message(world, schema.node.id, schema.method_names.index("sendBatch"))
        params = msg.call.params.content.as_struct(schema.methods["sendBatch"].param_type)
        events = params.init("events", 2)
        for i, event in enumerate(events):
            event.eventSchema = "demo/CounterEvent@1"
            event.value = '{"by": 1}' if i == 0 else '"XXBADUTF8XX"'
        patch = w.Patchable(msg)
        patch.replace(b"XXBADUTF8XX", b"\xff\xfe\xfdADUTF8XX")
        peer.send_bytes(bytes(patch.data))
        reply = peer.wait(q)
        assert reply.kind == "exception" and "aos.InvalidArgument: " in reply.text and "UTF-8" in reply.text, reply
        assert_clean(reply)

        journal = w.restore(peer, tokens["Journal"])
        schema = journal_capnp.Journal.schema
        q, msg = peer.call_message(journal, schema.node.id, schema.method_names.index("append"))
        params = msg.call.params.content.as_struct(schema.methods["append"].param_type)
        params.world, params.expectedSeq, params.epoch = "w", 1, 1
        records = params.init("records", 2)
        records[0], records[1] = b"fine", w.marker(9)
        patch = w.Patchable(msg)
        patch.set_word(patch.pointer_to_data(w.marker(9)), w.far_pointer(42))
        peer.send_bytes(bytes(patch.data))
        reply = peer.wait(q)
        assert reply.kind == "exception" and "aos.InvalidArgument: malformed params: " in reply.text, reply
        assert_clean(reply)

    async def head() -> tuple[int, int]:
        async with await Connection.open(kernel.address) as conn:
            return await (await (await conn.restore_kernel(kernel.admin_token)).journal("u")).head("w")

    assert run(head())[0] == 1  # the refused append wrote nothing
    assert _still_serving(kernel).startswith("sha256:")


def test_unknown_interface_and_method_are_refused_by_capnp_and_the_connection_lives(wire_kernel: dict[str, Any]) -> None:
    """An unknown method ordinal or interface id gets Cap'n Proto's clean `unimplemented`, and the same connection still works."""
    kernel, tokens = wire_kernel["kernel"], wire_kernel["tokens"]
    with w.RawPeer(kernel.address.removeprefix("unix:")) as peer:
        cas = w.restore(peer, tokens["Cas"])
        for interface_id, ordinal in ((cas_capnp.Cas.schema.node.id, 99), (0x1234567, 0), (w.GATEWAY_ID, 0)):
            reply = peer.wait(peer.call(cas, interface_id, ordinal))
            assert reply.kind == "exception" and reply.exception_type == "unimplemented", reply
            assert_clean(reply)
        has = cas_capnp.Cas.schema.method_names.index("has")
        reply = peer.wait(w.probe_call(peer, cas, cas_capnp.Cas.schema.node.id, has, {0: b"sha256:" + b"0" * 64 + b"\x00"}))
        assert reply.kind == "results", reply


def test_call_on_a_released_capability_ends_only_that_connection(wire_kernel: dict[str, Any]) -> None:
    """A call on a capability the caller released aborts that connection with a clean reason; others are untouched."""
    kernel = wire_kernel["kernel"]

    async def main() -> str:
        async with await Connection.open(kernel.address) as bystander:
            cas = await (await bystander.restore_kernel(kernel.admin_token)).cas("u")
            with w.RawPeer(kernel.address.removeprefix("unix:")) as peer:
                gateway = peer.gateway_import()
                peer.release(gateway)
                reply = peer.wait(peer.call(("import", gateway), w.GATEWAY_ID, 0))
                assert reply.kind in ("abort", "closed"), reply
                assert_clean(reply)
                reply = peer.wait(peer.call(("import", 4242), w.GATEWAY_ID, 0))
                assert reply.kind in ("abort", "closed"), reply
            return await cas.put(b"bystander unaffected")

    assert run(main()).startswith("sha256:")


def test_wrong_capability_where_a_subscriber_or_text_is(wire_kernel: dict[str, Any]) -> None:
    """The Gateway passed as a journal subscriber ends only that subscription; passed to save it is NotSaveable; as Text it is InvalidArgument."""
    kernel, tokens = wire_kernel["kernel"], wire_kernel["tokens"]
    with w.RawPeer(kernel.address.removeprefix("unix:")) as peer:
        gateway = peer.gateway_import()
        journal = w.restore(peer, tokens["Journal"])
        schema = journal_capnp.Journal.schema
        tail = schema.method_names.index("tail")
        reply = peer.wait(w.probe_call(peer, journal, schema.node.id, tail, {0: b"w\x00"}, {1: 0}, (gateway,)))
        assert reply.kind == "results", reply  # a handle: the kernel cannot know a capability's type up front
        save = peer.wait(w.probe_call(peer, ("import", gateway), w.GATEWAY_ID, 1, {}, {0: 0}, (gateway,)))
        assert save.kind == "exception" and "aos.NotSaveable: " in save.text, save
        restore = peer.wait(w.probe_call(peer, ("import", gateway), w.GATEWAY_ID, 0, {}, {0: 0}, (gateway,)))
        assert_invalid(restore, "token", "restore(token=<the gateway>)")
        head = schema.method_names.index("head")
        assert peer.wait(w.probe_call(peer, journal, schema.node.id, head, {0: b"w\x00"})).kind == "results"
    assert _still_serving(kernel).startswith("sha256:")
