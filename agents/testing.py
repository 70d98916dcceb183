"""Run an agent session without a kernel: the world ``Harness`` with scripted
LLM and tool receipts. Shipped with the package so users can test their own
agents the way we test ours.

    agent = AgentHarness(coding_agent("openai"), repo_root="/repo")
    agent.start("fix the bug")
    agent.reply(tool_calls=[call("read_file", file_path="/repo/a.py")])
    agent.settle(agent.tool_intents()[0], payload={"content": "x = 1\\n", ...})
    agent.reply("done")
    assert agent.kinds()[-1] == "processing_end"
"""

from __future__ import annotations

import itertools
from typing import Any

from aos.agents import history
from aos.agents.profiles import Environment
from aos.agents.sdk import AgentDefinition, SessionEvent, build_world, transcript
from aos.agents.session import COMMAND, LLM_EFFECT
from aos.agents.spec import Limits
from aos.kernel.world import World, load_runtimes, parse_manifest
from aos.kernel.world.records import EffectIntentRecord
from aos.kernel.world.stepper import StepResult
from aos.kernel.world.testing import Harness

_ids = itertools.count(1)


def call(name: str, _id: str | None = None, **arguments: Any) -> dict[str, Any]:
    """A tool call as it appears in an ``llm.generate`` receipt."""
    return {"id": _id or f"call_{next(_ids)}", "name": name, "arguments": arguments, "raw_arguments": None,
            "type": "function", "signature": None}


def llm_response(text: str = "", tool_calls: list[dict[str, Any]] | None = None, provider: str = "openai",
                 model: str = "test-model", reasoning: str | None = None) -> dict[str, Any]:
    """An ok ``llm.generate`` receipt payload, shaped like ``response_to_dict``."""
    calls = tool_calls or []
    parts: list[dict[str, Any]] = [{"kind": "text", "text": text}] if text else []
    parts += [{"kind": "tool_call", "tool_call": c} for c in calls]
    return {"response": {
        "id": f"resp_{next(_ids)}", "model": model, "provider": provider, "text": text, "reasoning": reasoning,
        "finish_reason": {"reason": "tool_calls" if calls else "stop", "raw": None},
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "reasoning_tokens": None,
                  "cache_read_tokens": None, "cache_write_tokens": None},
        "tool_calls": calls, "message": {"role": "assistant", "content": parts}, "warnings": [],
        "rate_limit": None}}


def fixed_environment(root: str = "/repo", model: str = "test-model") -> Environment:
    """A fixed environment, so prompts do not depend on the machine or the date."""
    return Environment(working_dir=root, platform="linux", date="2026-01-01", model=model, is_git=True,
                       git_branch="main", project_docs=(("AGENTS.md", "Run the tests with make test."),))




class AgentHarness:
    """A session world in the sans-IO ``Harness``. Every step is checked to
    have no traps and no refused effects (a refused effect would stall a session)."""

    def __init__(self, definition: AgentDefinition, repo_root: str = "/repo", provider: str | None = None,
                 model: str | None = None, session: str = "main", limits: Limits | None = None,
                 env: Environment | None = None, options: dict[str, Any] | None = None) -> None:
        env = env or fixed_environment(repo_root, model or definition.profile.default_model)
        self.doc, self.start_value = build_world(definition, repo_root, provider, model, session=session,
                                                 env=env, limits=limits, options=options)
        self.manifest = parse_manifest(self.doc)
        self.world = World(self.manifest, load_runtimes(self.manifest, {}), "agent-test")
        self.h = Harness(self.world)
        self.session = session
        self.provider = self.start_value["config"]["provider"]

    # --- driving --------------------------------------------------------------------------------

    def _check(self, res: StepResult) -> StepResult:
        assert res.status == "ok", res.error
        assert not res.traps, [t.message for t in res.traps]
        rejected = [r for r in res.records if r.kind == "effect_rejected"]
        assert not rejected, rejected
        return res

    def send(self, value: dict[str, Any]) -> StepResult:
        """Send an ``agent/Command@1``."""
        return self._check(self.h.send(COMMAND, value))

    def start(self, task: str | None = None) -> StepResult:
        return self.send(dict(self.start_value, **({"text": task} if task else {})))

    def input(self, text: str, session: str | None = None) -> StepResult:
        return self.send({"session": session or self.session, "kind": "input", "text": text})

    def steer(self, text: str, session: str | None = None) -> StepResult:
        return self.send({"session": session or self.session, "kind": "steer", "text": text})

    def abort(self, session: str | None = None) -> StepResult:
        return self.send({"session": session or self.session, "kind": "abort"})

    def settle(self, intent: EffectIntentRecord, status: str = "ok", payload: Any = None) -> StepResult:
        """Deliver a receipt for ``intent``."""
        return self._check(self.h.receipt(intent, status, {} if payload is None else payload))

    def reply(self, text: str = "", tool_calls: list[dict[str, Any]] | None = None,
              session: str | None = None, reasoning: str | None = None) -> StepResult:
        """Answer the session's open LLM call."""
        payload = llm_response(text, tool_calls, self.provider, reasoning=reasoning)
        return self.settle(self.llm_intent(session), "ok", payload)

    def llm_error(self, code: str, message: str = "", session: str | None = None) -> StepResult:
        """Fail the open LLM call the way the kernel does (``error`` and ``message`` in the payload)."""
        return self.settle(self.llm_intent(session), "error", {"error": code, "message": message})

    # --- looking ----------------------------------------------------------------------------------

    def open_intents(self, session: str | None = None) -> list[EffectIntentRecord]:
        """The session's open intents, in emission order."""
        key = session or self.session
        found = [i for i in self.world.open_intents() if i.origin.key == key]
        return sorted(found, key=lambda i: (i.emitted_at_seq, i.effect_index))

    def llm_intent(self, session: str | None = None) -> EffectIntentRecord:
        found = [i for i in self.open_intents(session) if i.effect == LLM_EFFECT]
        assert len(found) == 1, f"expected one open llm call, found {len(found)}"
        return found[0]

    def has_llm_call(self, session: str | None = None) -> bool:
        return any(i.effect == LLM_EFFECT for i in self.open_intents(session))

    def tool_intents(self, session: str | None = None) -> list[EffectIntentRecord]:
        return [i for i in self.open_intents(session) if i.effect != LLM_EFFECT]

    def events(self, session: str | None = None) -> list[SessionEvent]:
        return transcript(self.h.journal, session or self.session)

    def kinds(self, session: str | None = None) -> list[str]:
        return [e.kind for e in self.events(session)]

    def state(self, session: str | None = None) -> Any:
        return self.world.state("agent/session@1", session or self.session)

    def last_request(self, session: str | None = None) -> dict[str, Any]:
        """The params of the session's latest ``llm.generate`` intent, with its history by
        reference spelled out (``system``, ``tools``, ``messages``), as the kernel's adapter sends it."""
        key = session or self.session
        intents = [r for r in self.h.journal if isinstance(r, EffectIntentRecord)
                   and r.effect == LLM_EFFECT and r.origin.key == key]
        return history.request(intents[-1].params, self.blob)

    def blob(self, ref: str) -> Any:
        """A history blob, from the inline ``blobs`` of any ``llm.generate`` intent so far (the CAS the
        kernel would have filled)."""
        for r in self.h.journal:
            if isinstance(r, EffectIntentRecord) and r.effect == LLM_EFFECT and ref in (r.params.get("blobs") or {}):
                return r.params["blobs"][ref]
        raise KeyError(ref)
