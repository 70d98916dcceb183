"""The web agent: an agent session whose tools are a browser (``aos.agents.tools.browser``).

It runs in a world of its own like any agent; its only outside reach is a
``browser`` grant naming the origins it may visit (plus the ``llm`` grant for
its provider). ``build_web_agent`` returns the manifest and the start command,
as ``aos.agents.build_world`` does: create the world with the manifest, send
the start command as ``agent/Command@1``.
"""

from __future__ import annotations

import datetime as _dt
import platform as _platform
from typing import Any

from aos.agents.profiles import Environment, get_profile
from aos.agents.sdk import AgentDefinition, build_manifest, session_config
from aos.agents.spec import Limits
from aos.agents.tools import browser

DEFAULT_LIMITS = Limits(max_turns=40, max_tool_rounds_per_input=40)


def system_prompt(origins: list[str]) -> str:
    return f"""You are a web agent: you complete tasks in web applications with a browser.
You may visit these origins only: {", ".join(origins)}. Anything else is refused.

Work from snapshots: browser_navigate opens a page, browser_snapshot shows it as an accessibility tree whose
elements carry refs ([ref=e12]); browser_fill, browser_type and browser_click take those refs. Take a new
snapshot after every change of page (refs belong to one page). Check the page you end on: read it and quote
what it says before you answer. Never invent what a page shows.

Be brief. End with a short summary of what you did and what the final page says."""


def web_agent(origins: list[str], provider: str = "anthropic", limits: Limits | None = None,
              max_timeout_s: int | None = None) -> AgentDefinition:
    """The web agent for these origins (``scheme://host[:port]``)."""
    return AgentDefinition(
        name="web-agent", profile=get_profile(provider), system_prompt=system_prompt(origins),
        tools=browser.TOOLS, limits=limits or DEFAULT_LIMITS, effects=dict(browser.EFFECTS),
        schemas=dict(browser.SCHEMAS), grants={"web": browser.grant(origins, max_timeout_s)})


def build_web_agent(origins: list[str], task: str | None = None, *, provider: str = "anthropic",
                    model: str | None = None, session: str = "main", limits: Limits | None = None,
                    date: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(manifest_doc, start)`` of a web agent world: send ``start`` as ``agent/Command@1``."""
    definition = web_agent(origins, provider, limits)
    model = model or definition.profile.default_model
    env = Environment(working_dir="the web (" + ", ".join(origins) + ")", platform=_platform.system().lower(),
                      date=date or _dt.datetime.now(_dt.UTC).date().isoformat(), model=model)
    start: dict[str, Any] = {"session": session, "kind": "start",
                             "config": session_config(definition, env, provider, model)}
    if task:
        start["text"] = task
    doc = build_manifest(definition, "/", provider)
    doc["name"] = "agent/web-agent"
    return doc, start
