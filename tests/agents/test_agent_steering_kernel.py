"""G11 and G13 through a real kernel: steering and a reasoning-effort change reach the very next LLM request."""

import json
import os
import sys

import pytest

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn
from aos.agents import COMMAND, build_world, coding_agent, configure_event, steer_event
from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import raw_journal, wait_for  # noqa: E402

KEY = "sk-test-steer"
STEER = "STEER-TOKEN-42: also add a docstring"
BASE = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "gemini": "GEMINI_BASE_URL"}
KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


def reasoning_in(provider: str, body: dict) -> bool:
    """Whether a request asks for reasoning, in the provider's own wire field."""
    if provider == "openai":
        return (body.get("reasoning") or {}).get("effort") == "high"
    if provider == "anthropic":
        return (body.get("thinking") or {}).get("type") == "enabled"
    return "thinkingConfig" in (body.get("generationConfig") or {})


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_steering_and_reasoning_effort_apply_to_the_next_call(provider, data_dir, tmp_path):
    """Sent while a tool runs, a steer message and reasoning_effort=high both appear in the next request and not
    in the one before."""
    from aos.kernel.world import decode_record

    repo = tmp_path / "repo"
    repo.mkdir()
    twin = ProviderTwin(provider, api_key=KEY).start()
    blocking = "touch started; while [ ! -e go ]; do sleep 0.05; done; echo released"
    twin.script(ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": blocking}), id="call_1")]),
                Turn(ModelTurn(text="done, with a docstring")))
    env = dict(os.environ, **{BASE[provider]: twin.base_url, KEYS[provider]: KEY})
    kernel = KernelProcess(data_dir, env=env, extra_args=["--grant-host", str(repo)]).start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                doc, start = build_world(coding_agent(provider), repo, provider, session="main", task="fix it")
                world, _ = await (await admin.worlds("agents")).create(doc, {}, "steered")
                await world.send(COMMAND, start)

                async def command_running():
                    return (repo / "started").exists()

                await wait_for(command_running)
                await world.send(COMMAND, steer_event("main", STEER))
                await world.send(COMMAND, configure_event("main", reasoning_effort="high"))
                (repo / "go").write_text("")

                async def finished():
                    records = [decode_record(r) for r in await raw_journal(admin, "agents", "steered")]
                    ends = [r for r in records if r.kind == "domain_event" and r.value["kind"] == "processing_end"]
                    return records if ends else None

                return await wait_for(finished, timeout=30)

        records = run(main())
    finally:
        kernel.kill()
        twin.stop()
    assert twin.failures == [] and len(twin.requests) == 2
    first, second = (json.dumps(r.body) for r in twin.requests)
    assert STEER not in first and STEER in second
    assert not reasoning_in(provider, twin.requests[0].body) and reasoning_in(provider, twin.requests[1].body)
    kinds = [r.value["kind"] for r in records if r.kind == "domain_event"]
    assert "steering_injected" in kinds
