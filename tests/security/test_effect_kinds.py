"""Class 1: a built-in effect's capability kind (and whether it writes) is the kernel's, not the manifest's.

A manifest that declares a kernel effect under another grant kind, outside
``sys/``, or with a false ``writes`` flag is refused at create; admission and
dispatch use the kernel's table, so no other grant can admit a kernel effect.
"""

import os
import sys

import pytest

from aos.errors import AosError
from aos.kernel.client import Connection, run
from aos.kernel.world import parse_manifest
from aos.kernel.world.builtins import BUILTIN_EFFECTS, builtin_effect
from aos.kernel.world.errors import ManifestError
from aos.kernel.world.grants import find_grant
from aos.kernel.world.manifest import GRANT_PARAMS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

GRANT_FOR = {"timer": {}, "blob": {}, "cancel": {}, "portal": {}, "llm": {"providers": ["openai"]},
             "http": {"hosts": ["*"]}, "host.fs": {"root": "/tmp"}, "host.exec": {"cwd": "/tmp"},
             "governance": {"worlds": ["."], "ops": ["propose"]}, "inspect": {}, "universe": {"ops": ["send"]},
             "workspace": {}, "compile": {}, "browser": {"origins": ["http://127.0.0.1:8080"]}}
WRONG_CAPS = [(f"sys/{kind}@1", cap) for kind, b in sorted(BUILTIN_EFFECTS.items())
              for cap in sorted(GRANT_PARAMS) if cap != b.cap]


@pytest.mark.parametrize("effect,cap", WRONG_CAPS, ids=[f"{e}-as-{c}" for e, c in WRONG_CAPS])
def test_a_kernel_effect_under_another_cap_kind_is_refused(effect, cap):
    """Every built-in effect declared under any other grant kind is refused, naming the kind it needs."""
    doc = hostile_manifest({effect: declared(cap)}, {"g": {"cap": cap, "params": GRANT_FOR[cap]}})
    with pytest.raises(ManifestError) as err:
        parse_manifest(doc)
    assert err.value.path.endswith(".cap")
    assert repr(builtin_effect(effect).cap) in str(err.value)


@pytest.mark.parametrize("name", [
    "evil/host.exec@1", "x/llm.generate@1", "app/portal.send@2", "sys2/timer.set@1",
    "host.exec@1", "llm.generate@1", "a.b/host.fs.write@1",
])
def test_a_kernel_kind_outside_sys_is_refused(name):
    """The kernel routes effects by kind, so a built-in kind in another namespace (or none) is refused."""
    doc = hostile_manifest({name: declared("timer")}, {"t": {"cap": "timer"}})
    with pytest.raises(ManifestError, match="namespace"):
        parse_manifest(doc)


@pytest.mark.parametrize("name", ["sys/shell@1", "sys/host.fs.chmod@1", "sys/exec@1", "sys/llm@1"])
def test_an_unknown_sys_effect_is_refused(name):
    """``sys/`` holds only the kernel's effects; an unknown one is refused with the list of known ones."""
    with pytest.raises(ManifestError, match="not a kernel effect"):
        parse_manifest(hostile_manifest({name: declared("timer")}, {"t": {"cap": "timer"}}))


@pytest.mark.parametrize("kind", sorted(k for k, b in BUILTIN_EFFECTS.items() if b.writes))
def test_a_writing_effect_cannot_be_declared_as_a_read(kind):
    """A read-only host.fs grant refuses writes, so ``writes: false`` on a writing effect is refused."""
    doc = hostile_manifest({f"sys/{kind}@1": declared("host.fs", writes=False)},
                           {"fs": {"cap": "host.fs", "params": {"root": "/tmp", "read_only": True}}})
    with pytest.raises(ManifestError) as err:
        parse_manifest(doc)
    assert err.value.path.endswith(".writes")


@pytest.mark.parametrize("kind", sorted(k for k, b in BUILTIN_EFFECTS.items() if b.cap == "host.fs"))
def test_read_only_grants_admit_reads_only(kind):
    """With ``writes`` left out, the kernel's flag decides whether a read-only grant admits the effect."""
    doc = hostile_manifest({f"sys/{kind}@1": declared("host.fs")},
                           {"fs": {"cap": "host.fs", "params": {"root": "/tmp", "read_only": True}}})
    m = parse_manifest(doc)
    grant, why = find_grant(m, WORKFLOW, m.effects[f"sys/{kind}@1"], {"path": "a"})
    assert (grant is None) == BUILTIN_EFFECTS[kind].writes, why


def test_user_effects_keep_their_declared_kind():
    """An effect of the world's own namespace is declared under any kind; no kernel adapter runs it."""
    m = parse_manifest(hostile_manifest({"app/notify@1": declared("timer")}, {"t": {"cap": "timer"}}))
    assert m.effects["app/notify@1"].cap == "timer"
    assert builtin_effect("app/notify@1") is None


def test_a_hostile_manifest_is_refused_by_a_real_kernel_which_keeps_serving(kernel):
    """Through the kernel: llm.generate under a timer grant is refused at create, and the kernel answers after."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            worlds = await admin.worlds("u")
            for effect, cap in [("sys/llm.generate@1", "timer"), ("sys/portal.send@1", "blob"),
                                ("sys/host.exec@1", "timer"), ("sys/http.request@1", "cancel")]:
                doc = hostile_manifest({effect: declared(cap)}, {"g": {"cap": cap, "params": GRANT_FOR[cap]}})
                with pytest.raises(AosError) as err:
                    await worlds.create(doc, world_id="victim")
                assert err.value.code == "Manifest" and "grant, not" in str(err.value)
            assert await worlds.list() == []
            return await admin.status()

    assert run(main())["connections"] >= 1


def test_an_effect_without_a_kernel_adapter_settles_as_an_error(kernel):
    """A world's own effect kind is admitted by its grant and settles ``no_adapter``: nothing runs it."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            worlds = await admin.worlds("u")
            doc = hostile_manifest({"app/llm.generate@1": declared("timer")}, {"t": {"cap": "timer"}})
            with pytest.raises(AosError, match="namespace"):
                await worlds.create(doc)
            doc = hostile_manifest({"app/notify@1": declared("timer")}, {"t": {"cap": "timer"}})
            world, _ = await worlds.create(doc)
            await world.send(SCRIPT, {"effects": [{"effect": "app/notify@1", "params": {}}]})

            async def receipt():
                state = await world.state(WORKFLOW)
                return state["receipts"] if state and state["receipts"] else None

            return await wait_until(receipt)

    receipts = run(main())
    effect, status, payload = receipts[0]
    assert (effect, status, payload["error"]) == ("app/notify@1", "error", "no_adapter")
