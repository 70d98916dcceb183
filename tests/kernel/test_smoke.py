"""The kernel starts, serves a blob and a journal record, and stops cleanly."""

from aos.kernel.client import Connection, run


def test_blob_and_record_round_trip(kernel):
    """A client restores the admin token and reads back what it wrote."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("smoke")
            address = await cas.put(b"hello")
            journal = await admin.journal("smoke")
            seq = await journal.append("w1", 0, 1, [b"r0"])
            return address, await cas.get(address), seq, await journal.read("w1")

    address, data, seq, (records, next_seq) = run(main())
    assert address.startswith("sha256:2cf24dba")
    assert data == b"hello"
    assert seq == 0 and records == [b"r0"] and next_seq == 1
    assert kernel.stop() == 0
