"""Subagents: child sessions as other cells of the same workflow, results delivered back as events."""

import json

import pytest
from aos.agents import Limits, coding_agent
from aos.agents.testing import AgentHarness, call

CHILD = "main/1"


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def agent(request):
    return AgentHarness(coding_agent(request.param))


def results(request):
    return [m["content"][0]["tool_result"] for m in request["messages"] if m["role"] == "tool"]


def spawn(agent, **args):
    agent.start("delegate")
    return agent.reply(tool_calls=[call("spawn_agent", "sp", task="write tests", **args)])


def test_spawn_starts_a_child_session_with_its_own_history(agent):
    """spawn_agent returns an agent_id at once; the child is another cell with the task as its only message."""
    res = spawn(agent)
    assert json.loads(results(agent.last_request())[0]["content"]) == {"agent_id": CHILD, "status": "running"}
    child_req = agent.last_request(CHILD)
    assert child_req["messages"] == [{"role": "user", "content": "write tests"}]
    assert agent.state(CHILD)["parent"] == "main" and agent.state(CHILD)["depth"] == 1
    assert agent.state(CHILD)["config"]["limits"]["max_turns"] == 50
    assert {i.origin.key for i in res.intents} == {"main", CHILD}
    assert agent.kinds(CHILD)[:2] == ["session_start", "user_input"]


def test_wait_blocks_the_round_until_the_child_finishes(agent):
    """wait on a running child holds the parent's next LLM call; the child's answer comes back as the tool result."""
    spawn(agent)
    agent.reply(tool_calls=[call("wait", "w1", agent_id=CHILD)])
    assert not agent.has_llm_call()
    res = agent.reply(tool_calls=[call("write_file", file_path="t.py", content="ok")], session=CHILD)
    agent.settle(res.intents[0], "ok", {"path": "t.py", "size": 2, "created": True, "appended": False})
    agent.reply("tests written", session=CHILD)
    out = json.loads(results(agent.last_request())[-1]["content"])
    assert out == {"agent_id": CHILD, "status": "completed", "output": "tests written", "success": True,
                   "turns_used": 2}


def test_wait_on_a_finished_child_returns_at_once(agent):
    """A child that finished before wait is answered from the parent's record of it."""
    spawn(agent)
    agent.reply("all done", session=CHILD)
    agent.reply(tool_calls=[call("wait", agent_id=CHILD)])
    assert json.loads(results(agent.last_request())[-1]["content"])["output"] == "all done"


def test_send_input_to_a_running_child_is_an_error_then_works_after_it_finishes(agent):
    """send_input while the child runs is refused; after it finished, it starts a new cycle in the child."""
    spawn(agent)
    agent.reply(tool_calls=[call("send_input", agent_id=CHILD, message="also docs")])
    assert "still running; call wait before send_input" in results(agent.last_request())[-1]["content"]
    agent.reply("done", session=CHILD)
    agent.reply(tool_calls=[call("send_input", agent_id=CHILD, message="also docs")])
    assert agent.last_request(CHILD)["messages"][-1] == {"role": "user", "content": "also docs"}


def test_close_agent_closes_the_child(agent):
    """close_agent returns closed and the child's session ends, naming its open LLM call; it emits nothing more."""
    spawn(agent)
    open_call = agent.llm_intent(CHILD)
    agent.reply(tool_calls=[call("close_agent", agent_id=CHILD)])
    assert json.loads(results(agent.last_request())[-1]["content"]) == {"agent_id": CHILD, "status": "closed"}
    end = agent.events(CHILD)[-1]
    assert end.kind == "session_end" and agent.state(CHILD)["status"] == "closed"
    assert end.data["pending"] == [f"{open_call.emitted_at_seq}:{open_call.effect_index}"]
    late = agent.reply("too late", session=CHILD)
    assert not late.intents and agent.events(CHILD)[-1] == end


def test_depth_limit_blocks_recursive_spawning(agent):
    """With the default depth 1 a child's spawn_agent is an error result."""
    spawn(agent)
    agent.reply(tool_calls=[call("spawn_agent", task="grandchild")], session=CHILD)
    r = results(agent.last_request(CHILD))[-1]
    assert r["is_error"] and "max_subagent_depth=1 reached" in r["content"]


def test_unknown_agent_id_is_an_error():
    """wait on an id that was never spawned is an error result."""
    agent = AgentHarness(coding_agent("openai"))
    agent.start("x")
    agent.reply(tool_calls=[call("wait", agent_id="nope")])
    r = results(agent.last_request())[-1]
    assert r["is_error"] and "subagent 'nope' not found" in r["content"]


def test_spawn_options_override_model_turns_and_working_dir():
    """model, max_turns and working_dir of spawn_agent shape the child's config and its shell cwd."""
    agent = AgentHarness(coding_agent("anthropic"), limits=Limits(max_subagent_depth=2))
    spawn(agent, model="small-model", max_turns=3, working_dir="pkg")
    cfg = agent.state(CHILD)["config"]
    assert (cfg["model"], cfg["limits"]["max_turns"], cfg["cwd"]) == ("small-model", 3, "pkg")
    assert agent.last_request(CHILD)["model"] == "small-model"
    res = agent.reply(tool_calls=[call("shell", command="ls"), call("read_file", file_path="a.py")], session=CHILD)
    assert res.intents[0].params["cwd"] == "pkg" and res.intents[1].params["path"] == "pkg/a.py"


def test_aborting_the_parent_closes_running_children():
    """Abort of the parent sends close to its running children, which end their sessions."""
    agent = AgentHarness(coding_agent("gemini"))
    spawn(agent)
    agent.abort()
    assert agent.kinds(CHILD)[-1] == "session_end" and agent.state(CHILD)["status"] == "closed"
    assert agent.events(CHILD)[-1].data["reason"] == "closed"


def test_spawn_and_wait_in_one_response(agent):
    """spawn_agent then wait in the same round: the parent's next call carries the child's answer in call order."""
    agent.start("delegate and wait")
    agent.reply(tool_calls=[call("spawn_agent", "s", task="count files"), call("wait", "w", agent_id=CHILD)])
    assert not agent.has_llm_call() and agent.has_llm_call(CHILD)
    agent.reply("42 files", session=CHILD)
    first, second = results(agent.last_request())
    assert first["tool_call_id"] == "s" and json.loads(second["content"])["output"] == "42 files"
