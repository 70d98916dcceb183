"""The session's history by reference and its compaction near the context window (sans-IO).

Messages are blobs named by their hash; the cell state and each
``llm.generate`` intent hold hashes, so the history outgrows the 1 MiB cell
state without losing anything, and only the window forces a compaction: a
summary the model writes, which names the messages it replaced.
"""

from __future__ import annotations

from typing import Any

import pytest
from aos.agents import Limits, coding_agent, history
from aos.agents.session import COMPACT_PROMPT
from aos.agents.testing import AgentHarness, call
from aos.kernel.world import World, cbor, load_runtimes, replay

READ = {"path": "f.txt", "encoding": "utf-8", "offset": 0, "truncated": False}
BIG = 49_000


def read_payload(i: int) -> dict[str, Any]:
    return {**READ, "content": f"<{i}>" + "z" * BIG, "size": BIG + 8}


def outputs(request: dict[str, Any]) -> list[str]:
    return [m["content"][0]["tool_result"]["content"] for m in request["messages"] if m["role"] == "tool"]


def read_rounds(agent: AgentHarness, first: int, count: int) -> None:
    for i in range(first, first + count):
        res = agent.reply(tool_calls=[call("read_file", file_path=f"f{i}.txt")])
        agent.settle(res.intents[0], "ok", read_payload(i))


def test_every_message_is_a_blob_named_by_its_hash() -> None:
    """Each ref in a request's context is the hash of the canonical CBOR of the message it names."""
    agent = AgentHarness(coding_agent("openai"))
    agent.start("hello")
    params = agent.llm_intent().params
    ctx = params["context"]
    for ref in [ctx["prefix"], *ctx["tail"]]:
        assert cbor.hash_value(params["blobs"][ref]) == ref
    assert params["blobs"][ctx["tail"][0]] == {"role": "user", "content": "hello"}
    assert "messages" not in params and "system" not in params


def test_history_outgrows_the_cell_state_and_nothing_is_dropped() -> None:
    """Twenty 49 KB reads (far over the old 640 K budget) all reach a 1M-token model whole; the state stays small."""
    agent = AgentHarness(coding_agent("gemini"))
    agent.start("read everything")
    read_rounds(agent, 0, 20)
    seen = outputs(agent.last_request())
    assert len(seen) == 20 and all(f"<{i}>" in seen[i] for i in range(20))
    assert sum(map(len, seen)) > 1.4 * 640 * 1024
    assert len(agent.world.state_bytes("agent/session@1", "main")) < 128 * 1024
    assert not any(e.kind == "context_compacted" for e in agent.events())


def test_an_intent_carries_only_what_is_new() -> None:
    """After an ok answer, the next intent carries only the newest messages inline, the rest as refs."""
    agent = AgentHarness(coding_agent("anthropic"))
    agent.start("read")
    read_rounds(agent, 0, 6)
    params = agent.llm_intent().params
    inline = [v for v in params["blobs"].values() if isinstance(v, dict)]
    # blobs are keyed by hash, and canonical CBOR orders keys by their bytes: the order says nothing
    assert sorted(m["role"] for m in inline) == ["assistant", "tool"]
    assert len(cbor.encode(params)) < BIG + 8_000
    assert len(params["context"]["tail"]) == 1 + 2 * 6


def test_unconfirmed_blobs_are_sent_again_after_a_failed_call() -> None:
    """A failed llm.generate may not have stored its blobs, so the next intent carries them again."""
    agent = AgentHarness(coding_agent("openai"))
    agent.start("first")
    first = agent.llm_intent().params["blobs"]
    agent.llm_error("LLMServerError", "boom")
    agent.input("second")
    again = agent.llm_intent().params["blobs"]
    assert set(first) <= set(again)
    agent.reply("ok")
    agent.input("third")
    newest = sorted(v["role"] for v in agent.llm_intent().params["blobs"].values())
    assert newest == ["assistant", "user"]  # the answer "ok" and "third"; the rest is in CAS


def test_long_histories_seal_chunks_and_stay_small() -> None:
    """Past 2 x CHUNK messages the oldest refs are sealed into chunk blobs; the tail stays short."""
    agent = AgentHarness(coding_agent("openai"))
    agent.start("go")
    for i in range(100):
        res = agent.reply(tool_calls=[call("glob", pattern=f"p{i}")])
        agent.settle(res.intents[0], "ok", {"paths": [f"p{i}"], "truncated": False})
    h = agent.state()["history"]
    assert len(h["tail"]) < 2 * history.CHUNK and len(h["chunks"]) == (201 - len(h["tail"])) // history.CHUNK
    req = agent.last_request()
    assert len(req["messages"]) == 201 and outputs(req)[0] == "p0" and outputs(req)[-1] == "p99"
    assert len(cbor.encode(agent.llm_intent().params)) < 8_000


def compacting_agent() -> AgentHarness:
    agent = AgentHarness(coding_agent("anthropic"), limits=Limits(context_window=200_000,
                                                                 enable_loop_detection=False))
    agent.start("read everything")
    return agent


def run_until_compaction(agent: AgentHarness) -> int:
    """Read rounds until the session asks for a summary; returns the rounds run."""
    for i in range(40):
        read_rounds(agent, i, 1)
        if agent.last_request()["messages"][-1] == {"role": "user", "content": COMPACT_PROMPT}:
            return i + 1
    raise AssertionError("no compaction")


def test_compaction_is_a_summary_turn_near_the_window() -> None:
    """Near 85% of the window the session asks the model for a summary, with the whole history and its tools."""
    agent = compacting_agent()
    rounds = run_until_compaction(agent)
    req = agent.last_request()
    assert len(outputs(req)) == rounds  # everything since the start, nothing dropped before
    used = history.chars(agent.state()["history"]) // 4
    assert 0.85 * 200_000 < used < 200_000
    assert [t["name"] for t in req["tools"]] == [t["name"] for t in agent.start_value["config"]["tools"]]


def test_the_summary_replaces_the_old_messages_and_names_them() -> None:
    """After the summary, the request is the summary plus the newest rounds; the replaced span stays reachable."""
    agent = compacting_agent()
    rounds = run_until_compaction(agent)
    before = agent.last_request()["messages"][:-1]
    agent.reply("SUMMARY: read f0..fN")
    [event] = [e for e in agent.events() if e.kind == "context_compacted"]
    req = agent.last_request()
    summary = req["messages"][0]
    assert summary["role"] == "user" and summary["content"].endswith("SUMMARY: read f0..fN")
    assert summary["replaces"] == event.data["replaces"] and cbor.hash_value(summary) == event.data["summary_ref"]
    kept = req["messages"][1:]
    assert kept == before[len(before) - len(kept):] and kept[0]["role"] == "assistant"
    assert f"<{rounds - 1}>" in outputs(req)[-1]
    assert history.chars(agent.state()["history"]) // 4 <= 0.3 * 200_000
    # nothing is lost: the replaced refs expand to exactly the dropped messages
    assert history.expand(summary["replaces"], agent.blob) == before[:len(before) - len(kept)]
    assert event.data["messages_before"] == len(before) and event.data["messages_after"] == len(kept) + 1


def test_the_session_goes_on_after_compaction_and_compacts_again() -> None:
    """A long session compacts each time the window fills again, each summary replacing the one before."""
    agent = compacting_agent()
    summaries = 0
    for i in range(60):
        if agent.last_request()["messages"][-1] == {"role": "user", "content": COMPACT_PROMPT}:
            summaries += 1
            agent.reply(f"summary {summaries}")
            continue
        read_rounds(agent, i, 1)
    events = [e for e in agent.events() if e.kind == "context_compacted"]
    assert summaries == len(events) >= 2
    second = agent.blob(events[1].data["summary_ref"])
    assert events[0].data["summary_ref"] in second["replaces"]


def test_a_failed_summary_call_fails_the_input() -> None:
    """If the summary call fails, the input ends with the error (no silent drop, no retry loop)."""
    agent = compacting_agent()
    run_until_compaction(agent)
    agent.llm_error("LLMServerError", "overloaded")
    assert agent.kinds()[-2:] == ["error", "processing_end"]
    assert not any(e.kind == "context_compacted" for e in agent.events())


def test_one_oversized_message_is_not_compacted_away() -> None:
    """A single message over the threshold is not replaced by its own summary: the session warns and calls on."""
    agent = AgentHarness(coding_agent("openai"), limits=Limits(context_window=1_000))
    agent.start("x" * 3_500)
    assert agent.last_request()["messages"] == [{"role": "user", "content": "x" * 3_500}]
    assert any(e.kind == "warning" for e in agent.events())


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_compaction_replays_to_the_same_state(provider: str) -> None:
    """A session that compacted replays through a fresh world to the same state and records."""
    agent = AgentHarness(coding_agent(provider), limits=Limits(context_window=60_000))
    agent.start("go")
    for i in range(12):
        if agent.last_request()["messages"][-1] == {"role": "user", "content": COMPACT_PROMPT}:
            agent.reply("summary")
        else:
            read_rounds(agent, i, 1)
    assert any(e.kind == "context_compacted" for e in agent.events())
    fresh = World(agent.manifest, load_runtimes(agent.manifest, {}), "agent-test")
    assert replay(fresh, agent.h.journal) == ()
    assert fresh.state_hash() == agent.world.state_hash()
