"""Bad input of every kind gets a typed error or a closed connection, never a dead kernel."""

import asyncio
import os
import socket

import pytest

from aos.errors import InvalidArgument, InvalidToken, KernelUnavailable, PayloadTooLarge
from aos.kernel.client import Connection, call, run


async def _still_serving(kernel) -> str:
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        return await (await admin.cas("u")).put(b"alive")


def _raw(kernel) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(kernel.address.removeprefix("unix:"))
    return sock


def test_garbage_bytes_close_only_that_connection(kernel):
    """Random bytes on a socket do not disturb a client connected at the same time."""

    async def main():
        async with await Connection.open(kernel.address) as bystander:
            admin = await bystander.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            for payload in (os.urandom(4096), b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n"):
                sock = _raw(kernel)
                sock.sendall(payload)
                sock.settimeout(10)
                try:
                    while sock.recv(65536):
                        pass  # the kernel may answer with an abort message, then closes
                except (ConnectionResetError, socket.timeout):
                    pass
                sock.close()
            return await cas.put(b"bystander unaffected")

    assert run(main()).startswith("sha256:")
    assert run(_still_serving(kernel)).startswith("sha256:")


def test_truncated_message_and_half_closed_socket(kernel):
    """A frame header promising more bytes than arrive, then EOF, is survived."""
    sock = _raw(kernel)
    # segment count 1, first segment 1,000,000 words, then only a few bytes
    sock.sendall((0).to_bytes(4, "little") + (1_000_000).to_bytes(4, "little") + b"\x00" * 16)
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(10)
    try:
        sock.recv(1024)
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    assert run(_still_serving(kernel)).startswith("sha256:")


def test_message_over_the_traversal_limit_fails_that_call_or_connection(kernel):
    """A 40 MiB call is refused (typed error or closed connection) and the kernel keeps serving."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            with pytest.raises((PayloadTooLarge, KernelUnavailable)):
                await call(cas.cap.put(b"x" * (40 << 20)))

    run(main())
    assert run(_still_serving(kernel)).startswith("sha256:")


def test_wrong_types_and_ids_are_typed_errors(kernel):
    """Bad ids and names give InvalidArgument/InvalidToken and leave the connection usable."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            with pytest.raises(InvalidToken):
                await conn.restore("aos1_" + "!" * 43)
            admin = await conn.restore_kernel(kernel.admin_token)
            for universe in ("", "../etc", "u" * 200):
                with pytest.raises(InvalidArgument):
                    await admin.cas(universe)
            timers = await admin.timers("u")
            with pytest.raises(InvalidArgument):
                await timers.schedule(0, "k", b"", "not a mailbox")
            mailbox = await admin.mailbox("u")
            with pytest.raises(InvalidArgument):
                await mailbox.send("box", "", b"")
            return await (await admin.cas("u")).put(b"still fine")

    assert run(main()).startswith("sha256:")


def test_client_vanishing_mid_subscription_is_cleaned_up(kernel):
    """A client that disconnects while tailing does not break the kernel's later commits."""

    async def tail_and_leave():
        conn = await Connection.open(kernel.address)
        admin = await conn.restore_kernel(kernel.admin_token)
        journal = await admin.journal("u")
        await journal.append("w", 0, 1, [b"r"])
        got = asyncio.Event()

        async def on_records(seq, records):
            got.set()

        subscription = await journal.tail("w", 0, on_records)
        await asyncio.wait_for(got.wait(), 10)
        del subscription
        conn.close()

    run(tail_and_leave())

    async def write_more():
        async with await Connection.open(kernel.address) as conn:
            journal = await (await conn.restore_kernel(kernel.admin_token)).journal("u")
            for seq in range(1, 20):
                await journal.append("w", seq, 1, [b"r"])
            return await journal.head("w")

    assert run(write_more()) == (20, 1)
