"""``stream`` (ULS 4.4): the streaming API with the same tool loop.

A stream is retried only before its first event; after that a failure is an
ERROR event. With active tools a ``STEP_FINISH`` event separates the steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import structured
from .abort import AbortSignal, run_abortable
from .accumulator import StreamAccumulator
from .client import Client, get_default_client
from .errors import AbortError, RequestTimeoutError, SDKError
from .loop import (
    Plan,
    StepResult,
    TimeoutConfig,
    continue_history,
    make_plan,
    replace_messages,
    should_run_tools,
    step_result,
    with_timeout,
)
from .partial_json import parse_partial
from .retry import RetryPolicy
from .tools import RepairFn, Tool, execute_tool_calls
from .types import (
    Message,
    Request,
    Response,
    ResponseFormat,
    StreamEvent,
    StreamEventType,
    ToolChoice,
    ToolResult,
)


class StreamResult:
    """Async-iterate for events; ``response()`` for the final response.

    With active tools, a ``STEP_FINISH`` event separates the steps.
    """

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._acc = StreamAccumulator()
        self._events: AsyncIterator[StreamEvent] | None = None
        self._final: Response | None = None
        self._error: BaseException | None = None
        self.steps: list[StepResult] = []

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._events is None:
            self._events = self._run()
        return self._events

    @property
    def partial_response(self) -> Response:
        return self._acc.partial_response

    @property
    async def text_stream(self) -> AsyncIterator[str]:
        async for event in self:
            if event.type == StreamEventType.TEXT_DELTA and event.delta:
                yield event.delta

    async def response(self) -> Response:
        """Drain the stream; raise its error if it ended in one."""
        async for _ in self:
            pass
        if self._error is not None:
            raise self._error
        assert self._final is not None
        return self._final

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()  # type: ignore[attr-defined]

    async def _next(self, events: AsyncIterator[StreamEvent], deadline: float | None) -> StreamEvent:
        plan = self._plan
        remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
        work = with_timeout(remaining, anext(events), "stream")
        if plan.abort_signal is None:
            return await work  # type: ignore[no-any-return]
        return await run_abortable(work, plan.abort_signal)

    async def _open(self, request: Request, deadline: float | None) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
        """First event of one step, retrying failures that happen before it."""
        attempt = 0
        while True:
            events = self._plan.client.stream(request)
            try:
                first = await self._next(events, deadline)
                if first.type == StreamEventType.ERROR and isinstance(first.error, SDKError):
                    raise first.error
                return first, events
            except SDKError as error:
                await events.aclose()  # type: ignore[attr-defined]
                if isinstance(error, (AbortError, RequestTimeoutError)):
                    raise
                delay = self._plan.policy.delay_for(error, attempt)
                if delay is None:
                    raise
                if self._plan.policy.on_retry is not None:
                    self._plan.policy.on_retry(error, attempt + 1, delay)
                await self._plan.policy.sleep(delay)
                attempt += 1

    async def _run(self) -> AsyncIterator[StreamEvent]:
        plan = self._plan
        loop = asyncio.get_running_loop()
        deadline = None if plan.timeout.total is None else loop.time() + plan.timeout.total
        history = plan.request.messages
        round_no = 0
        try:
            while True:
                request = replace_messages(plan.request, list(history))
                acc = self._acc = StreamAccumulator()
                first, events = await self._open(request, deadline)
                event: StreamEvent | None = first
                try:
                    while event is not None:
                        acc.process(event)
                        yield event
                        if event.type == StreamEventType.ERROR:
                            self._error = event.error
                            return
                        if event.type == StreamEventType.FINISH:
                            break
                        try:
                            event = await self._next(events, deadline)
                        except StopAsyncIteration:
                            event = None
                finally:
                    await events.aclose()  # type: ignore[attr-defined]
                response = acc.response()
                results: list[ToolResult] = []
                if should_run_tools(plan, response, round_no):
                    work = execute_tool_calls(
                        response.tool_calls, plan.tools, list(history), plan.abort_signal, plan.repair
                    )
                    results = await run_abortable(work, plan.abort_signal)
                self.steps.append(step_result(response, results))
                self._final = response
                if not results or (plan.stop_when is not None and plan.stop_when(self.steps)):
                    return
                yield StreamEvent(
                    StreamEventType.STEP_FINISH,
                    finish_reason=response.finish_reason,
                    usage=response.usage,
                    response=response,
                )
                continue_history(history, response, results)
                round_no += 1
        except SDKError as e:
            self._error = e
            raise


def stream(
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
) -> StreamResult:
    """Like ``generate`` but streaming; returns at once, nothing is sent until iterated."""
    plan = make_plan(
        model, prompt, messages, system, tools, tool_choice, max_tool_rounds, stop_when, response_format,
        temperature, top_p, max_tokens, stop_sequences, reasoning_effort, provider, provider_options,
        max_retries, retry_policy, timeout, abort_signal, client, metadata, repair_tool_call,
    )  # fmt: skip
    return StreamResult(plan)


async def stream_object(
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
) -> AsyncIterator[Any]:
    """Yield ever-larger partial objects as the JSON streams in; the last item
    yielded is the complete object, validated against ``schema``.

    Raises ``NoObjectGeneratedError`` at the end if the output does not parse
    or validate (partials are best effort and never validated).
    """
    client = client or get_default_client()
    mode = structured.request_kwargs(client, provider, schema, schema_name)
    via_tool = "tools" in mode
    result = stream(model, prompt, messages=messages, system=system, provider=provider, client=client, **mode, **kwargs)
    text = ""
    last: Any = None
    async for event in result:
        if (event.type == StreamEventType.TOOL_CALL_DELTA) if via_tool else (event.type == StreamEventType.TEXT_DELTA):
            text += event.delta or ""
            partial = parse_partial(text)
            if partial is not None and partial != last:
                last = partial
                yield partial
    final = structured.extract(await result.response(), schema)
    if final != last:
        yield final
