"""Conformance matrix rows L19-L23: error mapping, retries, broken streams, abort, unknown events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aos.adapters.llm import (
    AbortController,
    AbortError,
    AccessDeniedError,
    AdapterTimeout,
    AuthenticationError,
    ContentFilterError,
    ContextLengthError,
    InvalidRequestError,
    Message,
    NotFoundError,
    RateLimitError,
    Request,
    RequestTimeoutError,
    RetryPolicy,
    SDKError,
    ServerError,
    StreamError,
    StreamEventType,
    generate,
    stream,
)
from aos.adapters.llm.testing import ErrorReply, Faults, ModelTurn, ProviderTwin, Turn

STATUS_CLASS = [
    (400, InvalidRequestError, False),
    (401, AuthenticationError, False),
    (403, AccessDeniedError, False),
    (404, NotFoundError, False),
    (408, RequestTimeoutError, False),
    (413, ContextLengthError, False),
    (422, InvalidRequestError, False),
    (429, RateLimitError, True),
    (500, ServerError, True),
    (503, ServerError, True),
]


def _complete_error(twin: ProviderTwin, **adapter_kwargs: Any) -> SDKError:
    async def go() -> SDKError:
        client = twin.client(**adapter_kwargs)
        try:
            await client.complete(Request(model="m", messages=[Message.user("x")]))
        except SDKError as e:
            return e
        finally:
            await client.close()
        raise AssertionError("no error raised")

    return asyncio.run(go())


def test_l19_status_mapping(twin: ProviderTwin) -> None:
    """L19: each status maps to its class with retryable, status_code, error_code, raw and provider set."""
    twin.script(
        *[ErrorReply(status, f"scripted {status}", headers={"retry-after": "7"}) for status, _, _ in STATUS_CLASS]
    )
    for status, cls, retryable in STATUS_CLASS:
        err = _complete_error(twin)
        assert type(err) is cls, (status, err)
        assert err.retryable is retryable
        if cls is not RequestTimeoutError:
            assert (err.status_code, err.provider, err.retry_after) == (status, twin.provider, 7.0)
            assert isinstance(err.raw, dict) and "error" in err.raw
            assert err.error_code, "the provider's error type/code is kept"
            assert str(err) == f"scripted {status}"
    twin.assert_done()


def test_l19_message_classification_and_grpc_status(twin: ProviderTwin) -> None:
    """L19: a 400 naming the context length or a safety filter, and Gemini's gRPC status strings, classify by content."""
    twin.script(
        ErrorReply(400, "This model's maximum context length is 128000 tokens."),
        ErrorReply(400, "Output blocked by content filter (safety)."),
        ErrorReply(409, "quota gone", code="RESOURCE_EXHAUSTED"),
    )
    assert type(_complete_error(twin)) is ContextLengthError
    assert type(_complete_error(twin)) is ContentFilterError
    err = _complete_error(twin)
    if twin.provider == "gemini":
        assert type(err) is RateLimitError and err.error_code == "RESOURCE_EXHAUSTED"


def test_l19_wrong_key_is_authentication_error(twin: ProviderTwin) -> None:
    """L19/8.9: the twin's real auth check rejects a wrong key and that surfaces as AuthenticationError, never retried."""

    async def go() -> SDKError:
        from aos.adapters.llm import Client

        adapter = type(twin.adapter())("wrong-key", twin.base_url)
        client = Client({twin.provider: adapter})
        try:
            await generate("m", "x", client=client, retry_policy=RetryPolicy(sleep=_no_sleep))
        except SDKError as e:
            return e
        finally:
            await client.close()
        raise AssertionError("no error")

    err = asyncio.run(go())
    assert isinstance(err, AuthenticationError) and not err.retryable
    assert len(twin.requests) == 1


async def _no_sleep(_: float) -> None:
    raise AssertionError("must not sleep/retry")


class FakeClock:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_l20_retry_after_honoured(twin: ProviderTwin) -> None:
    """L20: a 429 with retry-after: 1 is retried once after exactly 1 s (fake clock), then succeeds."""
    clock = FakeClock()
    twin.script(ErrorReply(429, "slow down", headers={"retry-after": "1"}), ModelTurn(text="ok"))

    async def go() -> str:
        client = twin.client()
        out = await generate("m", "x", client=client, retry_policy=RetryPolicy(sleep=clock.sleep))
        await client.close()
        return out.text

    assert asyncio.run(go()) == "ok"
    assert clock.sleeps == [1.0]
    twin.assert_done()


def test_l20_retry_after_above_max_delay_raises(twin: ProviderTwin) -> None:
    """L20: retry-after above max_delay is not waited for: the RateLimitError is raised with retry_after set."""
    clock = FakeClock()
    twin.script(ErrorReply(429, "slow down", headers={"retry-after": "120"}))

    async def go() -> SDKError:
        client = twin.client()
        try:
            await generate("m", "x", client=client, retry_policy=RetryPolicy(max_delay=60, sleep=clock.sleep))
        except SDKError as e:
            return e
        finally:
            await client.close()
        raise AssertionError("no error")

    err = asyncio.run(go())
    assert isinstance(err, RateLimitError) and err.retry_after == 120.0
    assert clock.sleeps == [] and len(twin.requests) == 1


def test_l20_backoff_and_max_retries(twin: ProviderTwin) -> None:
    """L20: 500s back off exponentially (jitter off) until max_retries; max_retries=0 makes one attempt."""
    clock = FakeClock()
    twin.script(*[ErrorReply(500, "boom") for _ in range(4)])

    async def go(policy: RetryPolicy) -> SDKError:
        client = twin.client()
        try:
            await generate("m", "x", client=client, retry_policy=policy)
        except SDKError as e:
            return e
        finally:
            await client.close()
        raise AssertionError("no error")

    err = asyncio.run(go(RetryPolicy(max_retries=2, base_delay=0.5, jitter=False, sleep=clock.sleep)))
    assert isinstance(err, ServerError) and clock.sleeps == [0.5, 1.0] and len(twin.requests) == 3
    asyncio.run(go(RetryPolicy(max_retries=0, sleep=_no_sleep)))
    assert len(twin.requests) == 4
    twin.assert_done()


def test_l20_jitter_bounds() -> None:
    """L20: jittered delays stay within 0.5x-1.5x of the capped exponential delay."""
    import random

    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    rng = random.Random(7)
    for attempt, base in enumerate([1.0, 2.0, 4.0, 5.0, 5.0]):
        delays = [policy.backoff(attempt, rng) for _ in range(50)]
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert max(delays) - min(delays) > 0.1 * base  # jitter actually varies


def _stream_events(twin: ProviderTwin, **adapter_kwargs: Any) -> list[Any]:
    async def go() -> list[Any]:
        client = twin.client(**adapter_kwargs)
        events = [e async for e in client.stream(Request(model="m", messages=[Message.user("x")]))]
        await client.close()
        return events

    return asyncio.run(go())


def test_l21_dropped_connection_is_stream_error_not_retried(twin: ProviderTwin) -> None:
    """L21: a connection cut after three events ends in an ERROR(StreamError) and is not retried."""
    twin.script(Turn(ModelTurn(text="a long answer that gets cut"), faults=Faults(drop_after=3)))

    async def go() -> tuple[list[Any], BaseException | None]:
        client = twin.client()
        result = stream("m", "x", client=client, retry_policy=RetryPolicy(sleep=_no_sleep))
        events = [e async for e in result]
        try:
            await result.response()
            error = None
        except SDKError as e:
            error = e
        await client.close()
        return events, error

    events, error = asyncio.run(go())
    assert events[0].type == StreamEventType.STREAM_START
    assert events[-1].type == StreamEventType.ERROR and isinstance(events[-1].error, StreamError)
    assert isinstance(error, StreamError)
    assert len(twin.requests) == 1
    twin.assert_done()


def test_l21_anthropic_in_band_error_event(make_twin: Any) -> None:
    """L21: Anthropic's in-band error event becomes an ERROR event carrying an overloaded ServerError."""
    twin = make_twin("anthropic")
    twin.script(
        ModelTurn(text="hi", extra_events=[("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})])
    )
    events = _stream_events(twin)
    assert events[-1].type == StreamEventType.ERROR
    assert isinstance(events[-1].error, ServerError) and "Overloaded" in str(events[-1].error)


def test_l21_stalled_stream_times_out(twin: ProviderTwin) -> None:
    """L21: a stream silent for longer than stream_read ends in ERROR(RequestTimeoutError)."""
    twin.script(Turn(ModelTurn(text="never finishes"), faults=Faults(stall_after=2)))
    events = _stream_events(twin, timeout=AdapterTimeout(stream_read=0.3))
    assert events[-1].type == StreamEventType.ERROR and isinstance(events[-1].error, RequestTimeoutError)
    assert twin.wait_for(lambda t: t.disconnects == 1), "the server saw the client hang up"


def test_l21_connect_phase_503_is_retried(twin: ProviderTwin) -> None:
    """L21: a 503 before any stream data is retried by the high-level stream()."""
    clock = FakeClock()
    twin.script(ErrorReply(503, "unavailable"), ModelTurn(text="second time lucky"))

    async def go() -> str:
        client = twin.client()
        resp = await stream(
            "m", "x", client=client, retry_policy=RetryPolicy(jitter=False, sleep=clock.sleep)
        ).response()
        await client.close()
        return resp.text

    assert asyncio.run(go()) == "second time lucky"
    assert clock.sleeps == [1.0] and len(twin.requests) == 2


def test_l22_abort_stream(twin: ProviderTwin) -> None:
    """L22: aborting a stalled stream raises AbortError promptly and the server sees the disconnect."""
    twin.script(Turn(ModelTurn(text="stalls forever"), faults=Faults(stall_after=2)))

    async def go() -> BaseException | None:
        controller = AbortController()
        client = twin.client()
        result = stream("m", "x", client=client, abort_signal=controller.signal)
        try:
            async with asyncio.timeout(10):
                async for event in result:
                    if event.type == StreamEventType.STREAM_START:
                        controller.abort()
        except AbortError as e:
            return e
        finally:
            await client.close()
        return None

    assert isinstance(asyncio.run(go()), AbortError)
    assert twin.wait_for(lambda t: t.disconnects == 1)


def test_l22_abort_generate(twin: ProviderTwin) -> None:
    """L22: aborting generate() while the server withholds its reply raises AbortError and
    closes the connection."""
    twin.script(Turn(ModelTurn(text="stalls"), faults=Faults(stall_after=0)))

    async def go() -> BaseException | None:
        controller = AbortController()
        client = twin.client()
        task = asyncio.ensure_future(generate("m", "x", client=client, abort_signal=controller.signal))
        assert await asyncio.to_thread(twin.wait_for, lambda t: len(t.requests) == 1)
        controller.abort()
        try:
            await asyncio.wait_for(task, 10)
        except AbortError as e:
            return e
        finally:
            await client.close()
        return None

    assert isinstance(asyncio.run(go()), AbortError)
    assert twin.wait_for(lambda t: t.disconnects == 1)


UNKNOWN = {
    "openai": ("response.brand_new_event", {"detail": 1}),
    "anthropic": ("brand_new_event", {"detail": 1}),
    "gemini": ("brand_new_event", {"promptFeedback": {"detail": 1}}),
}


def test_l23_unknown_events_surface_as_provider_events(twin: ProviderTwin) -> None:
    """L23: an unknown SSE event becomes PROVIDER_EVENT with its raw payload, and the stream goes on."""
    twin.script(ModelTurn(text="still fine", extra_events=[UNKNOWN[twin.provider]]))
    events = _stream_events(twin)
    provider_events = [e for e in events if e.type == StreamEventType.PROVIDER_EVENT]
    assert len(provider_events) == 1 and provider_events[0].raw.get("detail", 1) == 1
    assert events[-1].type == StreamEventType.FINISH and events[-1].response.text == "still fine"


@pytest.mark.parametrize("status", [401, 404])
def test_no_retry_for_auth_and_not_found(twin: ProviderTwin, status: int) -> None:
    """8.8: 401 and 404 are raised immediately, with no retry."""
    twin.script(ErrorReply(status, "nope"))

    async def go() -> None:
        client = twin.client()
        try:
            await generate("m", "x", client=client, retry_policy=RetryPolicy(sleep=_no_sleep))
        finally:
            await client.close()

    with pytest.raises((AuthenticationError, NotFoundError)):
        asyncio.run(go())
    assert len(twin.requests) == 1
