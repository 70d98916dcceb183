"""Capabilities: tokens, confinement, attenuation and revocation across connections."""

import pytest

from aos.errors import InvalidToken, NotSaveable, PermissionDenied, Revoked
from aos.kernel.client import Connection, call, run
from aos.schemas import caps_capnp


def test_admin_token_is_private_and_restores_the_kernel(kernel):
    """The admin token file is mode 0600 and restores a Kernel capability."""
    import os
    import stat

    mode = stat.S_IMODE(os.stat(kernel.token_path).st_mode)
    assert mode == 0o600

    async def main():
        async with await Connection.open(kernel.address) as conn:
            cap, info = await conn.restore(kernel.admin_token)
            return info

    info = run(main())
    assert info.kind == "kernel"


def test_tokens_are_stored_hashed(kernel):
    """No token text appears anywhere in the kernel's database files."""
    import glob

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            journal = await admin.journal("u")
            return await journal.save()

    token = run(main())
    assert kernel.stop() == 0
    for path in glob.glob(f"{kernel.data_dir}/db/*"):
        with open(path, "rb") as f:
            blob = f.read()
        assert token.encode() not in blob and kernel.admin_token.encode() not in blob
        assert token[5:].encode() not in blob


def test_forged_and_malformed_tokens_are_refused(kernel):
    """A well-formed random token and a malformed one both fail with InvalidToken."""
    from aos.caps.tokens import new_token

    async def main():
        errors = []
        async with await Connection.open(kernel.address) as conn:
            admin_token = kernel.admin_token
            off_by_one = admin_token[:-1] + ("B" if admin_token.endswith("A") else "A")
            for token in (new_token(), "not-a-token", off_by_one, ""):
                with pytest.raises(InvalidToken) as info:
                    await conn.restore(token)
                errors.append(str(info.value))
            # the connection still works after the failures
            admin = await conn.restore_kernel(kernel.admin_token)
            return errors, (await admin.info()).kind

    errors, kind = run(main())
    assert len(errors) == 4 and kind == "kernel"


def test_world_limited_journal_cannot_read_another_world(kernel):
    """A journal cap restricted to w1 reads w1 and is refused w2, even after a save/restore."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            journal = await admin.journal("u")
            await journal.append("w1", 0, 1, [b"one"])
            await journal.append("w2", 0, 1, [b"secret"])
            only_w1 = await journal.restrict("w1")
            token = await only_w1.save()
        async with await Connection.open(kernel.address) as other:
            limited = await other.restore_as(token)
            records, _ = await limited.read("w1")
            assert records == [b"one"]
            for call in (limited.read("w2"), limited.append("w2", 1, 1, [b"x"]), limited.head("w2")):
                with pytest.raises(PermissionDenied):
                    await call
            with pytest.raises(PermissionDenied):
                await limited.restrict("w2")  # cannot widen
            return await limited.list()

    assert run(main()) == ["w1"]


def test_read_only_caps_refuse_writes(kernel):
    """Read-only CAS and journal caps read but cannot write, and cannot be widened back."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            address = await cas.put(b"blob")
            ro = await cas.read_only()
            assert await ro.get(address) == b"blob"
            with pytest.raises(PermissionDenied):
                await ro.put(b"other")
            journal = await admin.journal("u")
            await journal.append("w", 0, 1, [b"r"])
            ro_journal = await journal.restrict("w", read_only=True)
            assert (await ro_journal.read("w"))[0] == [b"r"]
            with pytest.raises(PermissionDenied):
                await ro_journal.append("w", 1, 1, [b"x"])
            with pytest.raises(PermissionDenied):
                await ro_journal.fence("w", 5)
            narrowed = await ro_journal.restrict("", read_only=False)  # read-only sticks
            return (await narrowed.info()).read_only

    assert run(main()) is True


def test_revocation_reaches_other_connections_and_derived_caps(kernel):
    """Revoking a cap breaks it and everything derived from it on another connection at once."""

    async def main():
        async with await Connection.open(kernel.address) as owner:
            admin = await owner.restore_kernel(kernel.admin_token)
            journal = await admin.journal("u")
            await journal.append("w1", 0, 1, [b"r"])
            child = await journal.restrict("w1")
            grandchild = await child.restrict("w1", read_only=True)
            token_child = await child.save()
            token_grandchild = await grandchild.save()
            async with await Connection.open(kernel.address) as holder:
                held_child = await holder.restore_as(token_child)
                held_grandchild = await holder.restore_as(token_grandchild)
                assert (await held_grandchild.read("w1"))[0] == [b"r"]
                await journal.revoker.revoke()  # revoke the parent of both
                for cap in (held_child, held_grandchild):
                    with pytest.raises(Revoked):
                        await cap.read("w1")
                with pytest.raises(Revoked):
                    await holder.restore(token_grandchild)
            # the admin cap itself is untouched
            fresh = await admin.journal("u")
            return (await fresh.read("w1"))[0]

    assert run(main()) == [b"r"]


def test_revocation_survives_restart(kernel):
    """A token for a revoked cap stays useless after the kernel restarts."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            token = await cas.save()
            keep = await (await admin.cas("u")).save()
            await cas.revoker.revoke()
            return token, keep

    token, keep = run(main())
    assert kernel.stop() == 0
    kernel.start()

    async def after():
        async with await Connection.open(kernel.address) as conn:
            with pytest.raises(Revoked):
                await conn.restore(token)
            cas = await conn.restore_as(keep)
            return await cas.put(b"still works")

    assert run(after()).startswith("sha256:")


def test_token_is_useless_after_drop(kernel):
    """After drop, a token no longer restores, on any connection; live caps keep working."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            token = await cas.save()
            restored = await conn.restore_as(token)
            await conn.drop(token)
            await conn.drop(token)  # idempotent
            with pytest.raises(InvalidToken):
                await conn.restore(token)
            address = await restored.put(b"live cap still works")
        async with await Connection.open(kernel.address) as other:
            with pytest.raises(InvalidToken):
                await other.restore(token)
        return address

    assert run(main()).startswith("sha256:")


def test_save_refuses_caps_the_kernel_did_not_mint(kernel):
    """A client-made object passed to save is refused with NotSaveable."""

    class Impostor(caps_capnp.Held.Server):
        async def info(self, **kwargs):
            return {"kind": "kernel", "grantId": "root"}

        async def claim(self, nonce, **kwargs):
            return None

    async def main():
        async with await Connection.open(kernel.address) as conn:
            with pytest.raises(NotSaveable):
                await call(conn.gateway.save(Impostor()))
            admin = await conn.restore_kernel(kernel.admin_token)
            return (await admin.info()).kind

    assert run(main()) == "kernel"


def test_each_save_mints_a_distinct_unguessable_token(kernel):
    """Two saves of one cap give different 256-bit tokens."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            return await cas.save(), await cas.save()

    a, b = run(main())
    assert a != b and a.startswith("aos1_") and len(a) == 48
