"""Abort through a real kernel: the session ends and its running command is killed."""

import asyncio
import json
import os
import sys

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn
from aos.agents import COMMAND, abort_event, build_world, coding_agent
from aos.kernel.client import Connection, run
from aos.kernel.world import decode_record
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import raw_journal, wait_for  # noqa: E402

KEY = "sk-test-abort"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"  # a zombie has exited


def test_abort_kills_the_running_command_and_settles_it(data_dir, tmp_path):
    """While a shell command runs, abort ends the session, the command's process dies, and its intent
    settles as cancelled."""
    repo = tmp_path / "repo"
    repo.mkdir()
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    twin.script(ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": "echo $$ > pid; exec sleep 120"}),
                                                   id="call_1")]))
    env = dict(os.environ, ANTHROPIC_BASE_URL=twin.base_url, ANTHROPIC_API_KEY=KEY)
    kernel = KernelProcess(data_dir, env=env, extra_args=["--grant-host", str(repo)]).start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                doc, start = build_world(coding_agent("anthropic"), repo, "anthropic", session="main", task="wait")
                world, _ = await (await admin.worlds("agents")).create(doc, {}, "abortable")
                await world.send(COMMAND, start)
                pid_file = repo / "pid"

                async def started():
                    return pid_file.exists() and pid_file.read_text().strip()

                pid = int(await wait_for(started))
                assert alive(pid)
                await world.send(COMMAND, abort_event("main"))

                async def gone():
                    return not alive(pid)

                await wait_for(gone, timeout=20)

                async def settled():
                    records = [decode_record(r) for r in await raw_journal(admin, "agents", "abortable")]
                    return records if sum(r.kind == "receipt" for r in records) >= 3 else None

                return pid, await wait_for(settled)  # llm, the cancelled shell, the cancel itself

        pid, records = run(main())
    finally:
        kernel.kill()
        twin.stop()
    shell = next(r for r in records if r.kind == "effect_intent" and r.effect == "sys/host.exec@1")
    receipts = [r for r in records if r.kind == "receipt" and r.intent_hash == shell.intent_hash]
    assert len(receipts) == 1 and receipts[0].status == "error" and receipts[0].payload["error"] == "cancelled"
    assert any(r.kind == "domain_event" and r.value["kind"] == "session_end" for r in records)
