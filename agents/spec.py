"""What an agent is made of, as data: tools (``ToolSpec``) and limits (``Limits``).

A tool is a name, a description, a JSON schema for its arguments, the effect
it becomes (``sys/host.fs.read@1``; or ``builtin:<name>`` for the subagent
tools the session runs itself), an argument mapping (see ``aos.agents.calls``)
and how its receipt is shown to the model (``output``: ``read``, ``write``,
``edit``, ``patch``, ``grep``, ``glob``, ``exec``, ``browser`` or ``auto``; see
``aos.agents.calls.format_output``). ``to_config()`` is the form the session workflow reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """One tool. ``parameters`` is a JSON schema (an ``object``); ``args`` maps
    the model's arguments onto the effect's params."""

    name: str
    description: str
    parameters: dict[str, Any]
    effect: str
    args: dict[str, Any] = field(default_factory=dict)
    output: str = "auto"

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters,
                "effect": self.effect, "args": self.args, "output": self.output}


@dataclass(frozen=True)
class Limits:
    """Session limits (CAL 2.2 defaults; 0 = unlimited).

    ``max_turns``: LLM calls per session; ``max_tool_rounds_per_input``: tool
    rounds per user input; ``loop_detection_window``: calls compared;
    ``loop_action``: ``warn`` (inject a steering warning, as the spec) or
    ``stop`` (end the input); ``context_window``: tokens (chars/4), a warning at
    80%; ``max_subagent_depth``: 1 lets the top session spawn, children not;
    ``subagent_max_turns``: a child's default turn limit;
    ``tool_output_limits``: per tool ``{chars?, mode?, lines?}`` overrides;
    ``compact_percent``: compact the history once a request would fill this
    much of ``context_window`` (0 = never); ``compact_keep_percent``: how much
    of the window the newest messages, kept as they are, may take."""

    max_turns: int = 0
    max_tool_rounds_per_input: int = 200
    enable_loop_detection: bool = True
    loop_detection_window: int = 10
    loop_action: str = "warn"
    context_window: int = 200_000
    max_subagent_depth: int = 1
    subagent_max_turns: int = 50
    parallel_tool_calls: bool = True
    tool_output_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    compact_percent: int = 85
    compact_keep_percent: int = 25

    def to_config(self) -> dict[str, Any]:
        return asdict(self)
