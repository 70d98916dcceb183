"""The SDK: profiles, system prompts, the manifest it builds, transcripts and replay of a session's journal."""

import dataclasses

import pytest
from aos.agents import (
    ANTHROPIC,
    COMMAND,
    GEMINI,
    OPENAI,
    AgentDefinition,
    Environment,
    Limits,
    ToolSpec,
    build_world,
    coding_agent,
    transcript,
)
from aos.agents.sdk import EFFECTS, gather_environment
from aos.agents.testing import AgentHarness, call, fixed_environment
from aos.kernel.world import NondeterminismError, World, load_runtimes, parse_manifest, replay
from aos.kernel.world.records import ReceiptRecord

SHARED = ["close_agent", "glob", "grep", "read_file", "send_input", "shell", "spawn_agent", "wait", "write_file"]


@pytest.mark.parametrize(("profile", "edit_tool"), [(OPENAI, "apply_patch"), (ANTHROPIC, "edit_file"),
                                                    (GEMINI, "edit_file")])
def test_each_profile_has_the_shared_core_plus_its_edit_tool(profile, edit_tool):
    """OpenAI has apply_patch, Anthropic and Gemini edit_file; all have the shared core and subagent tools (G1)."""
    assert profile.tool_names() == sorted([*SHARED, edit_tool])
    other = {"apply_patch", "edit_file"} - {edit_tool}
    assert not other & set(profile.tool_names())
    for t in profile.tools:
        assert t.parameters["type"] == "object" and t.parameters["additionalProperties"] is False
        assert set(t.parameters["required"]) <= set(t.parameters["properties"])


def test_profiles_know_their_instruction_files_and_context_windows():
    """Each profile loads AGENTS.md plus only its provider's file; Gemini has a 1M context."""
    assert OPENAI.doc_files == ("AGENTS.md", ".codex/instructions.md")
    assert ANTHROPIC.doc_files == ("AGENTS.md", "CLAUDE.md")
    assert GEMINI.doc_files == ("AGENTS.md", "GEMINI.md")
    assert (GEMINI.context_window, ANTHROPIC.context_window) == (1_000_000, 200_000)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/feature-x\n")
    (tmp_path / "AGENTS.md").write_text("Run make test.")
    (tmp_path / "CLAUDE.md").write_text("Claude-only rule.")
    (tmp_path / "GEMINI.md").write_text("Gemini-only rule.")
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "instructions.md").write_text("Codex-only rule.")
    return tmp_path


@pytest.mark.parametrize(("name", "own", "others"), [
    ("openai", "Codex-only rule.", ["Claude-only", "Gemini-only"]),
    ("anthropic", "Claude-only rule.", ["Codex-only", "Gemini-only"]),
    ("gemini", "Gemini-only rule.", ["Claude-only", "Codex-only"]),
])
def test_system_prompt_has_the_environment_and_only_the_profiles_docs(repo, name, own, others):
    """The prompt has the <environment> block (cwd, branch, date, model), AGENTS.md and the provider's file only (G17)."""
    _doc, start = build_world(coding_agent(name), repo, date="2026-02-03", task="hi")
    system = start["config"]["system"]
    assert "<environment>" in system and f"Working directory: {repo.resolve()}" in system
    assert "Git branch: feature-x" in system and "Today's date: 2026-02-03" in system
    assert "Is git repository: true" in system and f"Model: {start['config']['model']}" in system
    assert "Run make test." in system and own in system
    assert not any(o in system for o in others)
    assert system.index("<environment>") < system.index("Run make test.")
    assert start == {"session": "main", "kind": "start", "config": start["config"], "text": "hi"}


def test_project_docs_are_cut_at_32_kb(repo):
    """Instruction files over 32 KB are truncated with the spec's marker."""
    (repo / "AGENTS.md").write_text("x" * 40_000)
    env = gather_environment(repo, ANTHROPIC, "m", date="2026-01-01")
    prompt = ANTHROPIC.system_prompt(env)
    assert "[Project instructions truncated at 32KB]" in prompt and len(prompt) < 36_000


def test_a_system_prompt_override_goes_last():
    """A user override is the last layer of the prompt."""
    prompt = OPENAI.system_prompt(fixed_environment(), override="ALWAYS USE TABS")
    assert prompt.endswith("ALWAYS USE TABS") and "apply_patch" in prompt


def test_manifest_wires_the_session_workflow_effects_and_grants(repo):
    """The manifest parses, routes commands by session, and grants the repo (fs, exec with shell) and the provider."""
    doc, _ = build_world(coding_agent("openai"), repo, date="2026-01-01")
    m = parse_manifest(doc)
    wf = m.workflows["agent/session@1"]
    assert wf.key == "agent/SessionId@1" and wf.event == COMMAND
    assert set(wf.effects) == {"sys/llm.generate@1", "sys/host.fs.read@1", "sys/host.fs.write@1",
                               "sys/host.fs.apply_patch@1", "sys/host.exec@1", "sys/host.fs.grep@1",
                               "sys/host.fs.glob@1", "sys/effect.cancel@1"}
    assert doc["routing"] == [{"event": COMMAND, "workflow": "agent/session@1", "key_field": "session"}]
    root = str(repo.resolve())
    assert doc["grants"]["repo"]["params"] == {"root": root, "read_only": False}
    assert doc["grants"]["exec"]["params"] == {"cwd": root, "shell": True}
    assert doc["grants"]["llm"]["params"] == {"providers": ["openai"]}
    assert m.effects["sys/host.fs.apply_patch@1"].writes and not m.effects["sys/host.fs.read@1"].writes


def test_custom_tools_win_on_a_name_collision_and_need_a_known_effect():
    """A custom tool replaces the profile's tool of the same name; an undeclared effect is refused."""
    mine = ToolSpec("grep", "my grep", {"type": "object", "properties": {}}, "sys/host.fs.grep@1")
    p = ANTHROPIC.with_tools(mine)
    assert [t for t in p.tools if t.name == "grep"] == [mine] and len(p.tools) == len(ANTHROPIC.tools)
    bad = AgentDefinition("x", ANTHROPIC, tools=(ToolSpec("t", "", {}, "sys/nope@1"),))
    with pytest.raises(ValueError, match="sys/nope@1"):
        build_world(bad, "/repo", env=fixed_environment())


def test_custom_effect_declared_by_the_definition_is_used():
    """A tool on an effect the definition declares (here http.request) is mapped and admitted under its grant."""
    fetch = ToolSpec("fetch", "GET a URL", {"type": "object", "properties": {"url": {"type": "string"}},
                                            "required": ["url"]},
                     "sys/http.request@1", {"url": {"$arg": "url"}})
    d = AgentDefinition("fetcher", OPENAI, tools=(fetch,), effects={
        "sys/http.request@1": {"params": "agent/Any@1", "receipt": "agent/Any@1", "cap": "http"}},
        grants={"web": {"cap": "http", "params": {"hosts": ["x.test"]}}})
    agent = AgentHarness(d)
    assert set(agent.doc["grants"]) == {"llm", "web", "cancel"}
    agent.start("get it")
    res = agent.reply(tool_calls=[call("fetch", url="https://x.test/a")])
    assert res.intents[0].effect == "sys/http.request@1" and res.intents[0].params == {"url": "https://x.test/a"}


def run_session(profile="anthropic"):
    agent = AgentHarness(coding_agent(profile))
    agent.start("fix it")
    res = agent.reply(tool_calls=[call("read_file", file_path="a.py"), call("shell", command="pytest")])
    agent.steer("hurry")
    agent.settle(res.intents[1], "ok", {"argv": [], "exit_code": 0, "stdout": "1 passed", "stderr": "",
                                         "duration_ms": 1})
    agent.settle(res.intents[0], "ok", {"path": "a.py", "content": "x\n", "size": 2, "truncated": False})
    agent.reply("fixed")
    return agent


def test_transcript_from_journal_bytes_equals_the_live_events():
    """transcript() over the encoded journal gives the same events as the live harness."""
    agent = run_session()
    raw = [r.encode() for r in agent.h.journal]
    assert transcript(raw, "main") == agent.events()
    kinds = [e.kind for e in transcript(raw)]
    assert kinds.count("tool_call_end") == 2 and "steering_injected" in kinds and kinds[-1] == "processing_end"


@pytest.mark.parametrize("profile", ["openai", "anthropic", "gemini"])
def test_replay_of_the_journal_rebuilds_the_same_state_and_events(profile):
    """Replaying a session's journal into a fresh world gives byte-identical state and the same derived records."""
    agent = run_session(profile)
    fresh = World(agent.manifest, load_runtimes(agent.manifest, {}), "agent-test")
    assert replay(fresh, agent.h.journal) == ()
    assert fresh.snapshot() == agent.world.snapshot()
    assert fresh.state("agent/session@1", "main")["status"] == "idle"


def test_replay_of_a_tampered_receipt_raises_nondeterminism():
    """A journal whose tool receipt was changed no longer replays: the derived events differ."""
    agent = run_session()
    journal = list(agent.h.journal)
    i = next(i for i, r in enumerate(journal) if isinstance(r, ReceiptRecord) and "stdout" in (r.payload or {}))
    journal[i] = dataclasses.replace(journal[i], payload={**journal[i].payload, "stdout": "1 failed"})
    fresh = World(agent.manifest, load_runtimes(agent.manifest, {}), "agent-test")
    with pytest.raises(NondeterminismError):
        replay(fresh, journal)


def test_limits_and_options_reach_the_session_config():
    """Limits and LLM options given to build_world are what the workflow runs with."""
    _, start = build_world(coding_agent("gemini"), "/repo", env=fixed_environment(),
                           limits=Limits(max_turns=7), options={"reasoning_effort": "low"})
    cfg = start["config"]
    assert cfg["limits"]["max_turns"] == 7 and cfg["options"] == {"reasoning_effort": "low"}
    assert cfg["root"] == "/repo" and {t["name"] for t in cfg["tools"]} >= {"edit_file", "shell"}


def fixed_environment_is_a_plain_value():
    """Environment is frozen data, so prompts are reproducible from it."""
    env = fixed_environment()
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.model = "x"  # type: ignore[misc]
    assert isinstance(env, Environment) and set(EFFECTS) >= {"sys/host.exec@1"}


def test_events_describe_themselves_in_one_line():
    """describe() gives one bounded line per event, naming the tool and marking errors."""
    agent = AgentHarness(coding_agent("openai"))
    agent.start("x")
    agent.reply(tool_calls=[call("nope", "n1")])
    lines = [e.describe(80) for e in agent.events()]
    assert lines[0].startswith("[main #1] session_start")
    assert any("tool_call_end nope ERROR 'Unknown tool: nope'" in line for line in lines)
    assert all("\n" not in line and len(line) <= 80 for line in lines)
