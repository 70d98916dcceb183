"""The session loop as a keyed workflow, driven with scripted receipts (sans-IO, all three profiles)."""

import json

import pytest
from aos.agents import Limits, coding_agent
from aos.agents.session import LOOP_WARNING
from aos.agents.testing import AgentHarness, call

PROFILES = ["openai", "anthropic", "gemini"]
READ_OK = {"path": "a.py", "content": "x = 1\ny = 2\n", "encoding": "utf-8", "size": 12, "offset": 0,
           "truncated": False}


def globbed(*paths):
    """An ok host.fs.glob receipt payload."""
    return {"paths": list(paths), "truncated": False}


def exec_ok(stdout="", stderr="", code=0):
    return {"argv": ["bash"], "exit_code": code, "stdout": stdout, "stderr": stderr, "stdout_bytes": len(stdout),
            "stderr_bytes": len(stderr), "stdout_truncated": False, "stderr_truncated": False, "truncated": False,
            "encoding": "utf-8", "duration_ms": 5}


@pytest.fixture(params=PROFILES)
def agent(request):
    return AgentHarness(coding_agent(request.param))


def tool_results(request):
    """The tool-result messages of an llm.generate request, as (call id, text, is_error)."""
    return [(m["tool_call_id"], m["content"][0]["tool_result"]["content"], m["content"][0]["tool_result"]["is_error"])
            for m in request["messages"] if m["role"] == "tool"]


def test_plain_answer_emits_the_lifecycle_and_ends_processing(agent):
    """A text-only answer ends the input: start, user input, assistant text start/delta/end, processing end."""
    agent.start("say hi")
    req = agent.last_request()
    assert req["messages"] == [{"role": "user", "content": "say hi"}]
    assert "<environment>" in req["system"] and req["provider"] == agent.provider
    agent.reply("hi there")
    assert agent.kinds() == ["session_start", "user_input", "assistant_text_start", "assistant_text_delta",
                             "assistant_text_end", "processing_end"]
    assert agent.events()[-2].data["text"] == "hi there"
    assert agent.state()["status"] == "idle" and not agent.open_intents()


def test_parallel_tool_calls_are_emitted_in_one_step_and_return_in_call_order(agent):
    """Three calls of one response become three intents of one step; results go back in call order in one request."""
    agent.start("look around")
    res = agent.reply(tool_calls=[call("read_file", "c1", file_path="/repo/a.py"),
                                  call("shell", "c2", command="ls"),
                                  call("glob", "c3", pattern="**/*.py")])
    assert len(res.intents) == 3 and len({i.emitted_at_seq for i in res.intents}) == 1
    assert [i.effect for i in res.intents] == ["sys/host.fs.read@1", "sys/host.exec@1", "sys/host.fs.glob@1"]
    read, shell, glob = res.intents
    assert read.params == {"path": "a.py"}
    assert shell.params["argv"] == ["bash", "-c", "ls"]
    # settle out of order; the next LLM call waits for all three
    agent.settle(glob, "ok", globbed("a.py"))
    agent.settle(shell, "error", exec_ok(stderr="boom", code=2))
    assert not agent.has_llm_call()
    agent.settle(read, "ok", READ_OK)
    results = tool_results(agent.last_request())
    assert [r[0] for r in results] == ["c1", "c2", "c3"]
    assert results[0] == ("c1", "1 | x = 1\n2 | y = 2", False)
    assert "exit_code: 2" in results[1][1] and "boom" in results[1][1] and results[1][2] is True
    assert results[2] == ("c3", "a.py", False)


def test_shell_timeout_uses_the_profile_default_and_a_clamped_override(agent):
    """Shell's timeout is 10 s (Anthropic 120 s) by default, a per-call timeout_ms is clamped to 600 s."""
    agent.start("run")
    res = agent.reply(tool_calls=[call("shell", command="make"), call("shell", command="x", timeout_ms=9_000_000)])
    default = 120 if agent.provider == "anthropic" else 10
    assert [i.params["timeout_ms"] for i in res.intents] == [default * 1000, 600_000]
    agent.settle(res.intents[0], "timeout", {"error": "timeout", "message": "", **exec_ok(stdout="partial"),
                                             "exit_code": None})
    end = next(e for e in agent.events() if e.kind == "tool_call_end")
    assert end.data["is_error"] and "[ERROR: Command timed out after" in end.data["output"]
    assert "partial" in end.data["output"]


def test_unknown_tool_and_bad_arguments_become_error_results_without_effects(agent):
    """An unknown tool, a missing argument, a wrong type and bad JSON are error results; no intent is emitted."""
    agent.start("go")
    res = agent.reply(tool_calls=[
        call("frobnicate", "u1"),
        call("read_file", "u2"),
        call("read_file", "u3", file_path=7),
        {**call("grep", "u4"), "arguments": "{not json"},
        call("read_file", "u5", file_path="/etc/passwd"),
    ])
    assert res.intents[-1].effect == "sys/llm.generate@1" and len(res.intents) == 1
    results = tool_results(agent.last_request())
    assert results[0] == ("u1", "Unknown tool: frobnicate", True)
    assert results[1][1].startswith("Invalid arguments for tool: read_file") and "file_path" in results[1][1]
    assert "expected type 'string'" in results[2][1]
    assert "invalid JSON arguments for tool 'grep'" in results[3][1]
    assert "outside the workspace" in results[4][1]
    assert all(r[2] for r in results)
    agent.reply("sorry")
    assert agent.kinds()[-1] == "processing_end"


def test_truncation_the_model_sees_head_and_tail_the_event_carries_everything(agent):
    """A 100k-character read reaches the model truncated with the spec's marker; tool_call_end has it whole."""
    agent.start("read big")
    res = agent.reply(tool_calls=[call("read_file", "big", file_path="big.txt")])
    body = "A" * 60_000 + "B" * 40_000
    agent.settle(res.intents[0], "ok", {**READ_OK, "content": body, "size": len(body)})
    end = next(e for e in agent.events() if e.kind == "tool_call_end")
    assert end.data["output"] == "1 | " + body
    seen = tool_results(agent.last_request())[0][1]
    assert len(seen) < 51_000 and "[WARNING: Tool output was truncated." in seen
    assert seen.startswith("1 | AAAA") and seen.endswith("BBBB")


def test_shell_output_is_line_truncated_after_characters(agent):
    """300 lines of shell output reach the model with a '[... N lines omitted ...]' marker."""
    agent.start("many lines")
    res = agent.reply(tool_calls=[call("shell", command="seq 300")])
    agent.settle(res.intents[0], "ok", exec_ok("\n".join(str(i) for i in range(300))))
    seen = tool_results(agent.last_request())[0][1]
    assert "lines omitted ...]" in seen and "\n299\n" in seen + "\n"


def test_round_limit_stops_the_input_with_turn_limit():
    """max_tool_rounds_per_input=2 stops after two rounds with a turn_limit event and no third LLM call."""
    agent = AgentHarness(coding_agent("openai"), limits=Limits(max_tool_rounds_per_input=2))
    agent.start("loop")
    for i in range(2):
        res = agent.reply(tool_calls=[call("glob", pattern=f"*.{i}")])
        agent.settle(res.intents[0], "ok", globbed("none"))
    ev = agent.events()
    assert [e.kind for e in ev][-2:] == ["turn_limit", "processing_end"]
    assert ev[-2].data == {"round": 2} and not agent.open_intents()


def test_turn_limit_applies_across_inputs():
    """max_turns counts LLM calls over the session: the second input hits it before calling the model again."""
    agent = AgentHarness(coding_agent("anthropic"), limits=Limits(max_turns=1))
    agent.start("one")
    agent.reply("first")
    agent.input("two")
    assert agent.events()[-2].kind == "turn_limit" and agent.events()[-2].data == {"total_turns": 1}
    assert not agent.has_llm_call()


@pytest.mark.parametrize("action", ["warn", "stop"])
def test_loop_detection_warns_or_stops(action):
    """The same call ten times in a row is a loop: a loop_detection event and a warning steering turn (or a stop)."""
    agent = AgentHarness(coding_agent("gemini"), limits=Limits(loop_action=action))
    agent.start("spin")
    for _ in range(10):
        res = agent.reply(tool_calls=[call("glob", pattern="*.py")])
        agent.settle(res.intents[0], "ok", globbed("a.py"))
    kinds = agent.kinds()
    assert kinds.count("loop_detection") == 1
    if action == "warn":
        warning = LOOP_WARNING.format(window=10)
        assert agent.last_request()["messages"][-1] == {"role": "user", "content": warning}
    else:
        assert kinds[-1] == "processing_end" and agent.events()[-1].data["reason"] == "loop_detected"
        assert not agent.has_llm_call()


def test_alternating_pattern_is_a_loop_but_varied_calls_are_not():
    """A two-call pattern repeated is caught; ten different calls are not."""
    agent = AgentHarness(coding_agent("openai"))
    agent.start("vary")
    for i in range(10):
        res = agent.reply(tool_calls=[call("glob", pattern=f"*.{i}")])
        agent.settle(res.intents[0], "ok", globbed())
    assert "loop_detection" not in agent.kinds()
    for i in range(10):
        res = agent.reply(tool_calls=[call("glob", pattern=f"*.{i % 2}")])
        agent.settle(res.intents[0], "ok", globbed())
    assert "loop_detection" in agent.kinds()


def test_steering_is_injected_before_the_next_llm_call(agent):
    """A steer during a tool round becomes the last user message of the next request, with steering_injected."""
    agent.start("work")
    res = agent.reply(tool_calls=[call("glob", pattern="*")])
    agent.steer("use pytest, not unittest")
    assert not agent.has_llm_call()
    agent.settle(res.intents[0], "ok", globbed("a.py"))
    assert agent.last_request()["messages"][-1] == {"role": "user", "content": "use pytest, not unittest"}
    kinds = agent.kinds()
    assert kinds.index("steering_injected") > kinds.index("tool_call_end")


def test_steering_while_idle_is_delivered_with_the_next_input(agent):
    """A steer sent while idle is injected right after the next user turn."""
    agent.start()
    agent.steer("be brief")
    assert not agent.has_llm_call()
    agent.input("explain")
    msgs = agent.last_request()["messages"]
    assert msgs == [{"role": "user", "content": "explain"}, {"role": "user", "content": "be brief"}]


def test_input_while_busy_is_queued_as_a_follow_up(agent):
    """Input during processing waits; after processing_end the follow-up starts a second cycle."""
    agent.start("first task")
    agent.input("second task")
    assert agent.kinds().count("user_input") == 1
    agent.reply("done with first")
    assert agent.kinds().count("processing_end") == 1
    assert agent.last_request()["messages"][-1] == {"role": "user", "content": "second task"}
    agent.reply("done with second")
    assert agent.kinds().count("processing_end") == 2


def test_abort_stops_effects_and_lists_the_open_intents_to_cancel(agent):
    """Abort during a running shell ends the session and asks the kernel to cancel the running command;
    late receipts change nothing; input is refused."""
    agent.start("run forever")
    res = agent.reply(tool_calls=[call("shell", command="sleep 100")])
    aborted = agent.abort()
    end = agent.events()[-1]
    assert end.kind == "session_end" and end.data["reason"] == "aborted"
    assert end.data["pending"] == [f"{res.intents[0].emitted_at_seq}:0"]
    (cancel,) = aborted.intents
    assert cancel.effect == "sys/effect.cancel@1"
    assert cancel.params == {"emitted_at_seq": res.intents[0].emitted_at_seq, "effect_index": 0}
    assert agent.state()["status"] == "closed"
    before = len(agent.events())
    r = agent.settle(res.intents[0], "error", {"error": "cancelled", "message": "cancelled by the workflow"})
    assert not r.intents and len(agent.events()) == before
    agent.settle(cancel, "ok", {"cancelled": True})
    agent.input("more")
    assert agent.events()[-1].kind == "warning" and not agent.open_intents()


def test_llm_error_receipt_is_an_error_event_and_ends_the_input(agent):
    """A provider error becomes an error event and processing_end; the next input calls the model again."""
    agent.start("hi")
    agent.llm_error("LLMServer", "overloaded")
    ev = agent.events()
    assert [e.kind for e in ev][-2:] == ["error", "processing_end"]
    assert ev[-2].data == {"code": "LLMServer", "message": "overloaded"}
    agent.input("again")
    assert agent.has_llm_call()


def test_authentication_error_closes_the_session(agent):
    """An authentication error is unrecoverable: error, then session_end, status closed."""
    agent.start("hi")
    agent.llm_error("LLMAuthentication", "bad key")
    assert agent.kinds()[-2:] == ["error", "session_end"] and agent.state()["status"] == "closed"


def test_reasoning_effort_change_applies_to_the_next_call(agent):
    """configure(reasoning_effort=high) changes the options of the next llm.generate, not the running one."""
    agent.start("think")
    assert "options" not in agent.last_request()
    agent.send({"session": "main", "kind": "configure", "config": {"reasoning_effort": "high"}})
    agent.reply("ok")
    agent.input("think harder")
    assert agent.last_request()["options"] == {"reasoning_effort": "high"}


def test_assistant_message_is_echoed_verbatim_into_the_history(agent):
    """The receipt's message (thinking signatures, call ids) goes back to the provider unchanged (G18, sans-IO)."""
    agent.start("x")
    c = dict(call("glob", "toolu_01", pattern="*"), signature="sig-abc")
    thinking = {"kind": "thinking", "thinking": {"text": "hmm", "signature": "s1", "redacted": False,
                                                 "provider": agent.provider, "id": None}}
    payload_msg = {"role": "assistant", "content": [thinking, {"kind": "tool_call", "tool_call": c}]}
    from aos.agents.testing import llm_response
    p = llm_response("", [c], agent.provider)
    p["response"]["message"] = payload_msg
    res = agent.settle(agent.llm_intent(), "ok", p)
    agent.settle(res.intents[0], "ok", globbed())
    assert agent.last_request()["messages"][1] == payload_msg


def test_question_without_tool_calls_awaits_input(agent):
    """An answer that asks the user a question leaves the session awaiting input; the answer resumes it."""
    agent.start("fix it")
    agent.reply("Which file should I change?")
    assert agent.state()["status"] == "awaiting_input"
    agent.input("a.py")
    assert agent.state()["status"] == "processing"


def test_read_only_session_refuses_write_tools_without_an_effect():
    """Under a read-only grant a write tool is an error result, so no effect is refused by the kernel."""
    from dataclasses import replace
    agent = AgentHarness(replace(coding_agent("anthropic"), read_only=True))
    agent.start("edit")
    res = agent.reply(tool_calls=[call("write_file", file_path="x.txt", content="hi")])
    assert [i.effect for i in res.intents] == ["sys/llm.generate@1"]
    assert "read-only" in tool_results(agent.last_request())[0][1]


def test_context_warning_at_80_percent():
    """When the history passes 80% of the context window a single warning event is emitted."""
    agent = AgentHarness(coding_agent("openai"), limits=Limits(context_window=1_000))
    agent.start("x" * 3_500)
    warnings = [e for e in agent.events() if e.kind == "warning"]
    assert len(warnings) == 1 and "Context usage at ~" in warnings[0].data["message"]
    agent.reply("ok")
    agent.input("more")
    assert len([e for e in agent.events() if e.kind == "warning"]) == 1


def test_sequential_tool_calls_without_parallel_support():
    """With parallel_tool_calls off, a round's effects are emitted one at a time, still in call order."""
    agent = AgentHarness(coding_agent("openai"), limits=Limits(parallel_tool_calls=False))
    agent.start("seq")
    res = agent.reply(tool_calls=[call("glob", "s1", pattern="a"), call("glob", "s2", pattern="b")])
    assert [i.params["pattern"] for i in res.intents] == ["a"]
    res2 = agent.settle(res.intents[0], "ok", globbed("A"))
    assert [i.params["pattern"] for i in res2.intents] == ["b"]
    agent.settle(res2.intents[0], "ok", globbed("B"))
    assert [r[:2] for r in tool_results(agent.last_request())] == [("s1", "A"), ("s2", "B")]


def test_events_are_numbered_and_timestamped_from_logical_time(agent):
    """Event seq counts from 1 without gaps and at_ns is the ingress stamp's logical time."""
    agent.start("hi")
    agent.reply("yo")
    ev = agent.events()
    assert [e.seq for e in ev] == list(range(1, len(ev) + 1))
    assert all(e.at_ns >= 1_000_000_000 for e in ev)
    assert json.dumps([e.data for e in ev])  # plain data
