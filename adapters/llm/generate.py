"""``generate`` and ``generate_object`` (ULS 4.3, 4.5): the non-streaming API."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from . import structured
from .abort import AbortSignal, run_abortable
from .client import Client, get_default_client
from .loop import (
    GenerateResult,
    Plan,
    StepResult,
    TimeoutConfig,
    continue_history,
    final_result,
    make_plan,
    replace_messages,
    should_run_tools,
    step_result,
    with_timeout,
)
from .retry import RetryPolicy, retry
from .tools import RepairFn, Tool, execute_tool_calls
from .types import Message, ResponseFormat, ToolChoice, ToolResult

__all__ = ["generate", "generate_object", "GenerateResult", "StepResult", "TimeoutConfig"]


async def _run_loop(plan: Plan) -> GenerateResult:
    history = plan.request.messages
    steps: list[StepResult] = []
    round_no = 0
    while True:
        request = replace_messages(plan.request, list(history))
        response = await with_timeout(
            plan.timeout.per_step, retry(partial(plan.client.complete, request), plan.policy), "LLM step"
        )
        results: list[ToolResult] = []
        if should_run_tools(plan, response, round_no):
            results = await execute_tool_calls(
                response.tool_calls, plan.tools, list(history), plan.abort_signal, plan.repair
            )
        steps.append(step_result(response, results))
        if not results or (plan.stop_when is not None and plan.stop_when(steps)):
            return final_result(steps)
        continue_history(history, response, results)
        round_no += 1


async def generate(
    model: str,
    prompt: str | None = None,
    *,
    messages: list[Message] | None = None,
    system: str | None = None,
    tools: list[Tool] | None = None,
    tool_choice: ToolChoice | str | None = None,
    max_tool_rounds: int = 1,
    stop_when: Callable[[list[StepResult]], bool] | None = None,
    response_format: ResponseFormat | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop_sequences: list[str] | None = None,
    reasoning_effort: str | None = None,
    provider: str | None = None,
    provider_options: dict[str, Any] | None = None,
    max_retries: int = 2,
    retry_policy: RetryPolicy | None = None,
    timeout: float | TimeoutConfig | None = None,
    abort_signal: AbortSignal | None = None,
    client: Client | None = None,
    metadata: dict[str, str] | None = None,
    repair_tool_call: RepairFn | None = None,
) -> GenerateResult:
    """Generate, running active tools for up to ``max_tool_rounds`` rounds.

    Raises ``AbortError`` when ``abort_signal`` fires and
    ``RequestTimeoutError`` when ``timeout`` (total or per step) runs out.
    """
    plan = make_plan(
        model, prompt, messages, system, tools, tool_choice, max_tool_rounds, stop_when, response_format,
        temperature, top_p, max_tokens, stop_sequences, reasoning_effort, provider, provider_options,
        max_retries, retry_policy, timeout, abort_signal, client, metadata, repair_tool_call,
    )  # fmt: skip
    work = with_timeout(plan.timeout.total, _run_loop(plan), "generate")
    result: GenerateResult = await run_abortable(work, plan.abort_signal)
    return result


async def generate_object(
    model: str,
    prompt: str | None = None,
    *,
    schema: dict[str, Any],
    schema_name: str = "output",
    messages: list[Message] | None = None,
    system: str | None = None,
    provider: str | None = None,
    client: Client | None = None,
    **kwargs: Any,
) -> GenerateResult:
    """Generate JSON matching ``schema``; ``result.output`` is the parsed object.

    Raises ``NoObjectGeneratedError`` (never retried) if the output does not
    parse or validate. See ``structured.py`` for how each provider is asked.
    """
    client = client or get_default_client()
    mode = structured.request_kwargs(client, provider, schema, schema_name)
    result = await generate(
        model, prompt, messages=messages, system=system, provider=provider, client=client, **mode, **kwargs
    )
    result.output = structured.extract(result.response, schema)
    return result
