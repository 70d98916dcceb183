"""The reviewer example: a second agent defined with the SDK, read-only by construction."""

import importlib.util
import json
import pathlib

import pytest
from aos.agents import transcript
from aos.agents.testing import AgentHarness, call

HERE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "reviewer" / "agent.py"


def globbed(*paths):
    return {"paths": list(paths), "truncated": False}


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("reviewer_example", HERE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_reviewer_manifest_grants_only_reading(example):
    """The reviewer's world has read, grep and glob under a read-only repo grant, the LLM, cancelling its own
    effects, and nothing else."""
    agent = AgentHarness(example.reviewer("openai"))
    assert set(agent.doc["effects"]) == {"sys/llm.generate@1", "sys/host.fs.read@1", "sys/host.fs.grep@1",
                                         "sys/host.fs.glob@1", "sys/effect.cancel@1"}
    assert agent.doc["grants"]["repo"]["params"]["read_only"] is True
    assert set(agent.doc["grants"]) == {"repo", "llm", "cancel"}
    cfg = agent.start_value["config"]
    assert [t["name"] for t in cfg["tools"]] == ["glob", "grep", "read_file"]
    assert cfg["system"].startswith("You are a code reviewer.") and "<environment>" in cfg["system"]


@pytest.mark.parametrize("profile", ["openai", "anthropic", "gemini"])
def test_reviewer_reads_then_reports_and_cannot_write(example, profile):
    """A review: glob and read in one round, a write attempt refused as an unknown tool, then the report."""
    agent = AgentHarness(example.reviewer(profile))
    agent.start("review a.py")
    res = agent.reply(tool_calls=[call("glob", pattern="**/*.py"), call("read_file", file_path="/repo/a.py")])
    agent.settle(res.intents[0], "ok", globbed("a.py"))
    agent.settle(res.intents[1], "ok", {"path": "a.py", "content": "eval(input())\n", "size": 14,
                                         "truncated": False})
    res = agent.reply(tool_calls=[call("write_file", file_path="a.py", content="")])
    assert [i.effect for i in res.intents] == ["sys/llm.generate@1"]
    agent.reply("a.py:1 eval of user input is unsafe; use ast.literal_eval. Verdict: request changes.")
    events = transcript(agent.h.journal, "main")
    ends = [e.data for e in events if e.kind == "tool_call_end"]
    assert ends[1]["output"] == "1 | eval(input())" and ends[2] == {
        "call_id": ends[2]["call_id"], "tool_name": "write_file", "output": "Unknown tool: write_file",
        "is_error": True}
    assert events[-1].kind == "processing_end" and "request changes" in events[-2].data["text"]


def test_reviewer_script_writes_a_bundle_and_start(example, tmp_path):
    """`--bundle DIR` writes the world manifest and the start command for a repository, and runs nothing."""
    repo, bundle = tmp_path / "repo", tmp_path / "bundle"
    repo.mkdir()
    (repo / "AGENTS.md").write_text("House rules.")
    assert example.main([str(repo), "--provider", "gemini", "--bundle", str(bundle)]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    start = json.loads((bundle / "start.json").read_text())
    assert manifest["grants"]["repo"]["params"]["root"] == str(repo.resolve())
    assert start["text"] == "Review the changes in this repository."
    assert "House rules." in start["config"]["system"] and start["config"]["provider"] == "gemini"
