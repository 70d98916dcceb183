"""The console's parts without a browser: the login gate and CSRF, world filters, journal rows, the audit log;
and the kernel calls it added (read-only Worlds, hibernate, effects, universes) over a real connection."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest

from aos.errors import PermissionDenied
from aos.kernel.client import Connection, run

from aos.console import views
from aos.console.audit import AuditLog, audit_record
from aos.console.auth import LOGIN_SECONDS, Gate, cookie_header

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consolekit import SCRIPT, effect, scripted_manifest  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_login_token_works_once_and_expires():
    """A login token gives one session; the same token again, an unknown one and an expired one give none."""
    clock = Clock()
    gate = Gate(clock=clock)
    token = gate.new_login()
    spent = gate.login(token)
    assert spent is not None
    sid, session = spent
    assert gate.session(sid) is session and gate.login(token) is None
    assert gate.login("nope") is None and gate.login(None) is None
    late = gate.new_login()
    clock.now += LOGIN_SECONDS + 1
    assert gate.login(late) is None
    gate.logout(sid)
    assert gate.session(sid) is None


def test_csrf_and_the_cookie_flags():
    """Only the session's own CSRF token passes; the cookie is HttpOnly and SameSite=Strict."""
    gate = Gate()
    _, session = gate.login(gate.new_login())
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok(session.csrf + "x")
    header = cookie_header("abc")
    assert "HttpOnly" in header and "SameSite=Strict" in header and header.startswith("aos_console=abc;")


def test_filter_sort_and_page_worlds():
    """Worlds filter by state and by id or name (any case), sort by last activity first, and page."""
    rows = [views.world_row("u", {"worldId": f"w{i}", "name": "Agent" if i % 2 else "counter", "awake": i % 3 == 0,
                                  "journalHeight": i, "lastEventMs": 1000 + i, "quarantined": "" if i != 5 else "bad"})
            for i in range(10)]
    total, page = views.filter_worlds(rows, limit=3)
    assert total == 10 and [r["id"] for r in page] == ["w9", "w8", "w7"]
    total, page = views.filter_worlds(rows, state="quarantined")
    assert total == 1 and page[0]["id"] == "w5"
    total, page = views.filter_worlds(rows, query="AGENT", sort="id", descending=False, offset=1, limit=2)
    assert total == 5 and [r["id"] for r in page] == ["w3", "w5"]


def test_journal_rows_summarise_flag_problems_and_clip_big_records():
    """An error receipt is a problem row with its code; a record over the preview size is clipped."""
    receipt = {"at": 7, "kind": "receipt", "status": "error", "payload": {"error": "revoked", "message": "no"}}
    row = views.journal_row(receipt)
    assert row["problem"] and row["summary"].startswith("error revoked") and not row["clipped"]
    big = {"at": 8, "kind": "effect_intent", "effect": "sys/llm.generate@1", "grant": "llm",
           "params": {"messages": ["x" * 40_000]}}
    row = views.journal_row(big)
    assert row["clipped"] and isinstance(row["record"], str) and len(row["record"]) < 20_000
    event = {"at": 9, "kind": "domain_event", "schema": views.AGENT_EVENT,
             "value": {"session": "main", "seq": 3, "kind": "tool_call_start", "at_ns": 1, "data": {"tool_name": "shell"}}}
    assert views.agent_event(event)["kind"] == "tool_call_start"
    assert views.usage_totals([{"kind": "assistant_text_end", "data": {"usage": {"input_tokens": 4, "output_tokens": 2}}}]) \
        == {"llm_calls": 1, "input_tokens": 4, "output_tokens": 2}


def test_the_audit_file_keeps_request_and_result(tmp_path):
    """Without a Journal capability the audit records go to a 0600 JSON-lines file, in order."""
    path = tmp_path / "audit" / "log.jsonl"
    log = AuditLog(None, str(path))
    who = {"console_session": "s-1", "token_grant": "g"}

    async def main():
        await log.append(audit_record("request", "revoke_grant", "u", "w", who, {"grant": "files"}))
        await log.append(audit_record("result", "revoke_grant", "u", "w", who, {"grant": "files"}, {"ok": True}))
        return await log.recent("u")

    records = asyncio.run(main())
    assert [r["phase"] for r in records] == ["request", "result"] and records[1]["outcome"] == {"ok": True}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text().splitlines()[0])["action"] == "revoke_grant"


def test_read_only_worlds_refuse_every_write_and_the_new_calls_answer(kernel, tmp_path):
    """A read-only Worlds capability (and the worlds it opens) refuses create, fork, hibernate, send, snapshot
    and grant changes but reads; hibernate, effects and universes answer on a writable one."""

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            worlds = await admin.worlds("u")
            doc = scripted_manifest(str(tmp_path))
            doc["grants"].pop("files")  # this kernel grants no host directory
            world, _ = await worlds.create(doc, {}, "s1")
            await world.send(SCRIPT, {"effects": [effect("sys/timer.set@1", deliver_at_ns=time.time_ns() + 10**12)]})
            ro = await worlds.read_only()
            assert (await ro.info()).read_only
            seen = await ro.open("s1")
            refused = []
            for attempt in (lambda: ro.create(doc, {}, "s2"), lambda: ro.fork("s1"),
                            lambda: ro.hibernate("s1"), lambda: seen.send(SCRIPT, {}), lambda: seen.snapshot(),
                            lambda: seen.set_grant("timer", False)):
                with pytest.raises(PermissionDenied):
                    await attempt()
                refused.append(True)
            assert (await seen.journal(0, 2))[0] and await seen.grants()
            effects = await world.effects()
            assert [e["effect"] for e in effects] == ["sys/timer.set@1"]
            universes = {u["name"]: u for u in await admin.universes()}
            assert universes["u"]["worlds"] == 1 and universes["u"]["events"] == 1
            hibernated = await worlds.hibernate("s1")
            listed = await worlds.list()
            return refused, hibernated, listed

    refused, hibernated, listed = run(main())
    assert len(refused) == 6 and hibernated is True and listed[0]["awake"] is False
