"""The tool loop's shared pieces, used by ``generate`` and ``stream``.

How the loop works: call the model; if it asked for tools, finished with
``tool_calls``, every called tool is active (or unknown) and the round budget
is not spent, run all calls concurrently, append the assistant message and one
tool-result message per call, and call again. So the number of LLM calls is at
most ``max_tool_rounds + 1``. Retries wrap each LLM call, never the whole loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .abort import AbortSignal
from .client import Client, get_default_client
from .errors import InvalidRequestError, RequestTimeoutError
from .retry import RetryPolicy
from .tools import RepairFn, Tool
from .types import (
    ContentKind,
    ContentPart,
    FinishReason,
    Message,
    Request,
    Response,
    ResponseFormat,
    Role,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
    Warning,
)


@dataclass
class TimeoutConfig:
    total: float | None = None
    per_step: float | None = None


@dataclass
class StepResult:
    text: str
    reasoning: str | None
    tool_calls: list[ToolCall]
    tool_results: list[ToolResult]
    finish_reason: FinishReason
    usage: Usage
    response: Response
    warnings: list[Warning] = field(default_factory=list)


@dataclass
class GenerateResult:
    text: str
    reasoning: str | None
    tool_calls: list[ToolCall]
    tool_results: list[ToolResult]
    finish_reason: FinishReason
    usage: Usage
    total_usage: Usage
    steps: list[StepResult]
    response: Response
    output: Any = None


@dataclass
class Plan:
    """Everything one generate/stream call needs, normalized once."""

    client: Client
    request: Request
    tools: dict[str, Tool]
    max_tool_rounds: int
    stop_when: Callable[[list[StepResult]], bool] | None
    policy: RetryPolicy
    timeout: TimeoutConfig
    abort_signal: AbortSignal | None
    repair: RepairFn | None


def make_plan(
    model: str,
    prompt: str | None,
    messages: list[Message] | None,
    system: str | None,
    tools: list[Tool] | None,
    tool_choice: ToolChoice | str | None,
    max_tool_rounds: int,
    stop_when: Callable[[list[StepResult]], bool] | None,
    response_format: ResponseFormat | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    stop_sequences: list[str] | None,
    reasoning_effort: str | None,
    provider: str | None,
    provider_options: dict[str, Any] | None,
    max_retries: int,
    retry_policy: RetryPolicy | None,
    timeout: float | TimeoutConfig | None,
    abort_signal: AbortSignal | None,
    client: Client | None,
    metadata: dict[str, str] | None,
    repair_tool_call: RepairFn | None,
) -> Plan:
    if prompt is not None and messages is not None:
        raise InvalidRequestError("pass prompt or messages, not both")
    if prompt is None and messages is None:
        raise InvalidRequestError("pass prompt or messages")
    history = [Message.user(prompt)] if prompt is not None else list(messages or [])
    if system is not None:
        history.insert(0, Message.system(system))
    if isinstance(tool_choice, str):
        tool_choice = ToolChoice(tool_choice)
    request = Request(
        model=model,
        messages=history,
        provider=provider,
        tools=[t.definition for t in tools] if tools else None,
        tool_choice=tool_choice,
        response_format=response_format,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop_sequences=stop_sequences,
        reasoning_effort=reasoning_effort,
        metadata=metadata,
        provider_options=provider_options,
    )
    if retry_policy is None:
        retry_policy = RetryPolicy(max_retries=max_retries)
    if not isinstance(timeout, TimeoutConfig):
        timeout = TimeoutConfig(total=timeout)
    return Plan(
        client or get_default_client(),
        request,
        {t.name: t for t in tools or []},
        max_tool_rounds,
        stop_when,
        retry_policy,
        timeout,
        abort_signal,
        repair_tool_call,
    )


def should_run_tools(plan: Plan, response: Response, round_no: int) -> bool:
    calls = response.tool_calls
    if not calls or response.finish_reason.reason != "tool_calls" or round_no >= plan.max_tool_rounds:
        return False
    # a call to a known passive tool hands control back to the caller
    return all(plan.tools.get(c.name) is None or plan.tools[c.name].execute is not None for c in calls)


def continue_history(history: list[Message], response: Response, results: list[ToolResult]) -> None:
    history.append(response.message)
    for r in results:
        history.append(
            Message(Role.TOOL, [ContentPart(ContentKind.TOOL_RESULT, tool_result=r)], tool_call_id=r.tool_call_id)
        )


def step_result(response: Response, results: list[ToolResult]) -> StepResult:
    return StepResult(
        response.text,
        response.reasoning,
        response.tool_calls,
        results,
        response.finish_reason,
        response.usage,
        response,
        list(response.warnings),
    )


def final_result(steps: list[StepResult]) -> GenerateResult:
    last = steps[-1]
    total = Usage()
    for s in steps:
        total = total + s.usage
    return GenerateResult(
        last.text,
        last.reasoning,
        last.tool_calls,
        last.tool_results,
        last.finish_reason,
        last.usage,
        total,
        steps,
        last.response,
    )


async def with_timeout(seconds: float | None, work: Any, what: str) -> Any:
    if seconds is None:
        return await work
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        raise RequestTimeoutError(f"{what} timed out after {seconds:g}s") from None


def replace_messages(request: Request, messages: list[Message]) -> Request:
    return replace(request, messages=messages)
