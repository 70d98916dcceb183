"""CAS: verified reads, chunked transfer of large blobs, per-universe scoping."""

import hashlib
import os

import pytest
import rocksdict

from aos.errors import BlobNotFound, CorruptBlob, InvalidArgument, PayloadTooLarge
from aos.kernel.client import Connection, call, run


async def _cas(kernel, conn, universe="u"):
    admin = await conn.restore_kernel(kernel.admin_token)
    return await admin.cas(universe)


def test_put_get_has_stat(kernel):
    """A blob's address is its SHA-256; has/stat/get agree."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            cas = await _cas(kernel, conn)
            address = await cas.put(b"payload")
            again = await cas.put(b"payload")
            missing = "sha256:" + "0" * 64
            return address, again, await cas.get(address), await cas.has(address), await cas.stat(address), await cas.has(missing)

    address, again, data, present, size, missing_present = run(main())
    assert address == "sha256:" + hashlib.sha256(b"payload").hexdigest() == again
    assert (data, present, size, missing_present) == (b"payload", True, 7, False)


def test_blobs_larger_than_one_message_move_in_chunks(kernel):
    """A 20 MiB blob (over the 8 MiB message limit) uploads and reads back intact."""
    blob = os.urandom(20 << 20)

    async def main():
        async with await Connection.open(kernel.address) as conn:
            cas = await _cas(kernel, conn)
            address = await cas.put(blob)
            with pytest.raises(PayloadTooLarge):
                await call(cas.cap.get(address))  # one message cannot carry it
            return address, await cas.get(address), await cas.stat(address)

    address, data, size = run(main())
    assert address == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert data == blob and size == len(blob)


def test_upload_with_a_wrong_expected_hash_stores_nothing(kernel):
    """commit(expectedHash) that does not match fails with CorruptBlob and stores nothing."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            cas = await _cas(kernel, conn)
            writer = (await call(cas.cap.upload())).writer
            await call(writer.write(b"abc"))
            with pytest.raises(CorruptBlob):
                await call(writer.commit("sha256:" + "1" * 64))
            return await cas.has("sha256:" + hashlib.sha256(b"abc").hexdigest())

    assert run(main()) is False


def test_blobs_are_scoped_per_universe(kernel):
    """A blob put in one universe is invisible from another."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            mine = await _cas(kernel, conn, "u1")
            theirs = await _cas(kernel, conn, "u2")
            address = await mine.put(b"private")
            with pytest.raises(BlobNotFound):
                await theirs.get(address)
            return await theirs.has(address), await mine.has(address)

    assert run(main()) == (False, True)


def test_bad_addresses_and_oversized_puts(kernel):
    """Malformed addresses are InvalidArgument; a put over the message limit is PayloadTooLarge."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            cas = await _cas(kernel, conn)
            for bad in ("", "sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64):
                with pytest.raises(InvalidArgument):
                    await cas.get(bad)
            with pytest.raises(PayloadTooLarge):
                await call(cas.cap.put(b"x" * ((8 << 20) + 1)))
            return await cas.put(b"ok after errors")

    assert run(main()).startswith("sha256:")


def test_corrupted_blob_is_refused_not_served(kernel):
    """If stored bytes change on disk, get fails with CorruptBlob instead of returning them."""

    async def put():
        async with await Connection.open(kernel.address) as conn:
            return await (await _cas(kernel, conn)).put(b"original bytes")

    address = run(put())
    assert kernel.stop() == 0
    # flip the stored value behind the kernel's back
    options = rocksdict.Options(raw_mode=True)
    families = {name: rocksdict.Options(raw_mode=True) for name in rocksdict.Rdict.list_cf(f"{kernel.data_dir}/db")}
    db = rocksdict.Rdict(f"{kernel.data_dir}/db", options=options, column_families=families)
    cas = db.get_column_family("cas")
    key = b"u\x00" + bytes.fromhex(address[7:])
    assert cas[key] == b"original bytes"
    cas[key] = b"tampered bytes"
    del cas  # a live column-family handle keeps the database lock
    db.close()
    del db
    kernel.start()

    async def get():
        async with await Connection.open(kernel.address) as conn:
            cas = await _cas(kernel, conn)
            with pytest.raises(CorruptBlob):
                await cas.get(address)
            with pytest.raises(CorruptBlob):
                await call(cas.cap.read(address, 0, 4))
            return await cas.stat(address)

    assert run(get()) == len(b"tampered bytes")
