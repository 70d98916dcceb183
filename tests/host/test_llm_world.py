"""llm.generate as a world effect: the kernel calls the provider twin; the key never reaches the journal or logs."""

import os
import sys

import pytest

from aos.adapters.llm.testing import ModelTurn, ProviderTwin
from aos.kernel.client import Connection, run
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worldkit import raw_journal, wait_for, wait_for_state  # noqa: E402

KEY = "sk-test-world-SECRET-9f8e7d6c5b4a"
SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"


@pytest.fixture
def twin():
    twin = ProviderTwin("openai", api_key=KEY).start()
    try:
        yield twin
    finally:
        twin.stop()


@pytest.fixture
def llm_kernel(data_dir, twin):
    env = dict(os.environ, AOS_SECRET_OPENAI_API_KEY=KEY, OPENAI_BASE_URL=twin.base_url)
    proc = KernelProcess(data_dir, env=env).start()
    try:
        yield proc
    finally:
        proc.kill()


def manifest():
    return {
        "version": 1,
        "schemas": {**SCRIPTED_SCHEMAS, "sys/Any@1": "any"},
        "modules": {"test/scripted@1": {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {WORKFLOW: {"module": "test/scripted@1", "entry": "scripted", "state": "test/ScriptState@1",
                                 "event": SCRIPT, "effects": ["sys/llm.generate@1"]}},
        "effects": {"sys/llm.generate@1": {"params": "sys/Any@1", "receipt": "sys/Any@1", "cap": "llm"}},
        "grants": {"models": {"cap": "llm", "params": {"providers": ["openai"]}}},
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }


def test_llm_generate_effect_round_trip_keeps_the_key_out_of_the_journal(llm_kernel, twin):
    """The world gets the twin's answer as a receipt; the API key is in no journal record and no log line,
    and a base_url in the params cannot redirect the key elsewhere."""
    twin.script(ModelTurn(text="Hello, world", chunks=["Hello, ", "world"]))
    params = {"provider": "openai", "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}],
              "base_url": "http://127.0.0.1:9/steal"}

    async def main():
        async with await Connection.open(llm_kernel.address) as conn:
            admin = await conn.restore_kernel(llm_kernel.admin_token)
            world, _ = await (await admin.worlds("u")).create(manifest(), {}, "chat")
            await world.send(SCRIPT, {"effects": [{"effect": "sys/llm.generate@1", "params": params}]})
            state = await wait_for_state(world, WORKFLOW, lambda s: len(s["receipts"]) == 1)
            return state, b"".join(await raw_journal(admin, "u", "chat"))

    state, journal = run(main())
    effect, status, payload = state["receipts"][0]
    assert (effect, status) == ("sys/llm.generate@1", "ok"), payload
    assert payload["response"]["text"] == "Hello, world"
    twin.assert_done()
    assert KEY.encode() not in journal
    llm_kernel.stop()
    assert all(KEY not in line for line in llm_kernel.log_lines + llm_kernel.output)


def test_missing_secret_is_an_error_receipt_not_a_crash(data_dir, twin):
    """Without a configured key the effect settles with an error receipt naming the variable to set."""
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    kernel = KernelProcess(data_dir, env=dict(env, OPENAI_BASE_URL=twin.base_url)).start()
    params = {"provider": "openai", "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world, _ = await (await admin.worlds("u")).create(manifest(), {}, "nokey")
                await world.send(SCRIPT, {"effects": [{"effect": "sys/llm.generate@1", "params": params}]})
                return await wait_for_state(world, WORKFLOW, lambda s: len(s["receipts"]) == 1)

        state = run(main())
    finally:
        kernel.kill()
    effect, status, payload = state["receipts"][0]
    assert status == "error" and "AOS_SECRET_OPENAI_API_KEY" in payload["message"]


def test_a_priced_llm_call_journals_its_cost_as_whole_micro_dollars(llm_kernel, twin):
    """``cost: true`` adds the list-price estimate as an integer (world values have no floats), so the
    receipt reads back through the journal and a live tail like every other record."""
    twin.script(ModelTurn(text="priced"))
    params = {"provider": "openai", "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
              "cost": True, "stream": False}

    async def main():
        async with await Connection.open(llm_kernel.address) as conn:
            admin = await conn.restore_kernel(llm_kernel.admin_token)
            world, _ = await (await admin.worlds("u")).create(manifest(), {}, "priced")
            tailed = []

            async def on_record(seq, record):
                tailed.append(record)

            subscription = await world.tail(0, on_record)
            await world.send(SCRIPT, {"effects": [{"effect": "sys/llm.generate@1", "params": params}]})
            # the first priced call imports litellm's cost map in the kernel: seconds on a busy machine
            state = await wait_for_state(world, WORKFLOW, lambda s: len(s["receipts"]) == 1, timeout=90)
            # state runs ahead of the journal (the group commit lands just after), so wait on the tail

            async def tailed_receipt():
                return any(r["kind"] == "receipt" for r in tailed)

            await wait_for(tailed_receipt, timeout=30)
            records, _ = await world.journal(0, 0)
            await subscription.cancel()
            return state, records, tailed

    state, records, tailed = run(main())
    _, status, payload = state["receipts"][0]
    assert status == "ok", payload
    assert type(payload["cost_micro_usd"]) is int and payload["cost_micro_usd"] > 0
    receipt = next(r for r in records if r["kind"] == "receipt")
    assert receipt["payload"]["cost_micro_usd"] == payload["cost_micro_usd"]
    assert any(r["kind"] == "receipt" for r in tailed)  # the tail went on past it


def test_a_call_streams_only_while_someone_watches_the_worlds_frames(llm_kernel, twin):
    """Without ``stream`` in its params, an llm.generate made while nobody takes the world's frames is one
    plain request; with a frame watcher it streams, and the watcher gets the deltas. Same receipt."""
    twin.script(ModelTurn(text="unwatched"), ModelTurn(text="watched answer", chunks=["watched ", "answer"]))
    params = {"provider": "openai", "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    effects = {"effects": [{"effect": "sys/llm.generate@1", "params": params}]}

    async def main():
        async with await Connection.open(llm_kernel.address) as conn:
            admin = await conn.restore_kernel(llm_kernel.admin_token)
            world, _ = await (await admin.worlds("u")).create(manifest(), {}, "watched")
            records_only = await world.tail(0, _ignore)  # a tail without frames does not count as watching
            await world.send(SCRIPT, effects)
            await wait_for_state(world, WORKFLOW, lambda s: len(s["receipts"]) == 1)
            frames = []

            async def on_frame(intent_hash, frame):
                frames.append(frame)

            watching = await world.tail(0, _ignore, on_frame)
            await world.send(SCRIPT, effects)
            state = await wait_for_state(world, WORKFLOW, lambda s: len(s["receipts"]) == 2)
            await watching.cancel()
            await records_only.cancel()
            return state, frames

    state, frames = run(main())
    assert [r.stream for r in twin.requests] == [False, True]
    texts = [payload["response"]["text"] for _, status, payload in state["receipts"] if status == "ok"]
    assert texts == ["unwatched", "watched answer"]
    assert frames and any("watched" in str(f) for f in frames)


async def _ignore(*_):
    return None


def test_a_watcher_gets_an_effects_frames_between_its_intent_and_its_receipt(llm_kernel, twin):
    """Each streamed delta reaches a watcher after the intent it belongs to and before the receipt that
    settles it, however fast the receipt is committed (a client showing streamed text drops what comes
    after the receipt, as settled)."""
    rounds = 6
    chunks = [f"piece{i} " for i in range(12)]
    twin.script(*[ModelTurn(text="".join(chunks), chunks=chunks) for _ in range(rounds)])
    params = {"provider": "openai", "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    effects = {"effects": [{"effect": "sys/llm.generate@1", "params": params}]}

    async def main():
        async with await Connection.open(llm_kernel.address) as conn:
            admin = await conn.restore_kernel(llm_kernel.admin_token)
            world, _ = await (await admin.worlds("u")).create(manifest(), {}, "ordered")
            seen = []

            async def on_record(seq, value):
                if value.get("kind") in ("effect_intent", "receipt"):
                    seen.append((value["kind"], value["intent_hash"]))

            async def on_frame(intent_hash, frame):
                if isinstance(frame, dict) and frame.get("type") == "text_delta":
                    seen.append(("frame", intent_hash))

            watching = await world.tail(0, on_record, on_frame)
            for i in range(rounds):
                await world.send(SCRIPT, effects)
                await wait_for_state(world, WORKFLOW, lambda s, n=i + 1: len(s["receipts"]) == n)

            async def all_receipts():
                return sum(1 for kind, _ in seen if kind == "receipt") == rounds

            await wait_for(all_receipts)
            await watching.cancel()
            return seen

    seen = run(main())
    intents = [h for kind, h in seen if kind == "effect_intent"]
    assert len(intents) == rounds
    for h in intents:
        order = [kind for kind, hh in seen if hh == h]
        assert order[0] == "effect_intent" and order[-1] == "receipt", order
        assert order.count("frame") == len(chunks), order
