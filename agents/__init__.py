"""The agent SDK: an agent session is a deterministic keyed workflow in a world.

Define an agent (``AgentDefinition``: a profile, a system prompt, tools as
``ToolSpec``), turn it into a world manifest and a start command with
``build_world``, and read what happened back with ``transcript``. The session
workflow itself is ``aos.agents.session``; ``aos.agents.testing`` runs it
without a kernel.
"""

from aos.agents.profiles import ANTHROPIC, GEMINI, OPENAI, PROFILES, Environment, Profile, get_profile
from aos.agents.sdk import (
    WORKFLOW,
    AgentDefinition,
    SessionEvent,
    abort_event,
    build_manifest,
    build_world,
    close_event,
    coding_agent,
    configure_event,
    gather_environment,
    input_event,
    session_config,
    steer_event,
    transcript,
)
from aos.agents.session import COMMAND, EVENT
from aos.agents.spec import Limits, ToolSpec

__all__ = [
    "ANTHROPIC",
    "COMMAND",
    "EVENT",
    "GEMINI",
    "OPENAI",
    "PROFILES",
    "WORKFLOW",
    # defining an agent
    "AgentDefinition",
    "Environment",
    "Limits",
    # profiles
    "Profile",
    # reading it back
    "SessionEvent",
    "ToolSpec",
    "abort_event",
    "build_manifest",
    # the world
    "build_world",
    "close_event",
    "coding_agent",
    "configure_event",
    "gather_environment",
    "get_profile",
    "input_event",
    "session_config",
    "steer_event",
    "transcript",
]
