"""Provider profiles: ``openai`` (apply_patch), ``anthropic`` and ``gemini`` (edit_file)."""

from aos.agents.profiles.anthropic import PROFILE as ANTHROPIC
from aos.agents.profiles.base import Environment, Profile, environment_block, project_docs_block
from aos.agents.profiles.gemini import PROFILE as GEMINI
from aos.agents.profiles.openai import PROFILE as OPENAI

PROFILES: dict[str, Profile] = {p.name: p for p in (OPENAI, ANTHROPIC, GEMINI)}


def get_profile(name: str) -> Profile:
    """The profile named ``name`` (``openai``, ``anthropic``, ``gemini``); raises ``KeyError``."""
    return PROFILES[name]


__all__ = [
    "ANTHROPIC",
    "GEMINI",
    "OPENAI",
    "PROFILES",
    "Environment",
    "Profile",
    "environment_block",
    "get_profile",
    "project_docs_block",
]
