"""Tools and their execution (ULS 5).

All calls of one response run concurrently; every call yields a result in
call order, and nothing raises: unknown tools, bad arguments and handler
exceptions become ``is_error`` results the model can read and correct.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .abort import AbortSignal
from .schema import validate
from .types import Message, ToolCall, ToolDefinition, ToolResult

_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")

RepairFn = Callable[[ToolCall, list[str]], Any]


@dataclass
class Tool:
    """A tool the model may call. With ``execute`` it is active (run by the
    tool loop); without, passive (its calls are returned to the caller).

    ``execute`` may be sync or async; it receives the parsed arguments as
    keywords, plus ``messages``, ``abort_signal`` and ``tool_call_id`` if its
    signature names them.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    execute: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or len(self.name) > 64:
            raise ValueError(f"invalid tool name {self.name!r}: must match [a-zA-Z][a-zA-Z0-9_]* and be <= 64 chars")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON Schema with root type 'object'")

    @property
    def definition(self) -> ToolDefinition:
        return ToolDefinition(self.name, self.description, self.parameters)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, dict, list)):
        return value
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


async def execute_tool_call(
    call: ToolCall,
    tools: dict[str, Tool],
    messages: list[Message],
    abort_signal: AbortSignal | None = None,
    repair: RepairFn | None = None,
) -> ToolResult:
    tool = tools.get(call.name)
    if tool is None or tool.execute is None:
        return ToolResult(call.id, f"Unknown tool: {call.name}", is_error=True)
    args = call.arguments
    problems = ["arguments are not a JSON object"] if not isinstance(args, dict) else validate(args, tool.parameters)
    if problems and repair is not None:
        repaired = repair(call, problems)
        if inspect.isawaitable(repaired):
            repaired = await repaired
        if isinstance(repaired, dict):
            args, problems = repaired, validate(repaired, tool.parameters)
    if problems:
        return ToolResult(call.id, f"Invalid arguments for tool {call.name}: " + "; ".join(problems), is_error=True)
    assert isinstance(args, dict)
    kwargs = dict(args)
    params = inspect.signature(tool.execute).parameters
    for extra, value in (("messages", messages), ("abort_signal", abort_signal), ("tool_call_id", call.id)):
        if extra in params:
            kwargs[extra] = value
    try:
        out = tool.execute(**kwargs)
        if inspect.isawaitable(out):
            out = await out
    except Exception as e:  # noqa: BLE001 - a tool failure is data for the model
        return ToolResult(call.id, f"Tool error ({call.name}): {type(e).__name__}: {e}", is_error=True)
    return ToolResult(call.id, _jsonable(out))


async def execute_tool_calls(
    calls: list[ToolCall],
    tools: dict[str, Tool],
    messages: list[Message],
    abort_signal: AbortSignal | None = None,
    repair: RepairFn | None = None,
) -> list[ToolResult]:
    """Run every call at once and wait for all; results keep call order."""
    return list(await asyncio.gather(*(execute_tool_call(c, tools, messages, abort_signal, repair) for c in calls)))
