"""The OpenAI Responses and Chat Completions wires as the twins emit them."""

from __future__ import annotations

from typing import Any

from .script import ErrorReply, ModelTurn, TwinRequest
from .wire import Wire, split, sse


# -- OpenAI Responses --------------------------------------------------------------------------
class OpenAIWire(Wire):
    name = "openai"
    base_path = "/v1"
    routes = ("/v1/responses",)
    _TYPES = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "invalid_request_error",
        404: "invalid_request_error",
        429: "requests",
    }

    def auth_error(self, key: str | None) -> ErrorReply:
        return ErrorReply(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        default_code = {429: "rate_limit_exceeded", 404: "model_not_found"}.get(status)
        return {
            "error": {
                "message": message,
                "type": self._TYPES.get(status, "server_error"),
                "param": None,
                "code": code or default_code,
            }
        }

    def _items(self, t: ModelTurn) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if t.reasoning is not None or t.reasoning_signature is not None:
            item: dict[str, Any] = {"type": "reasoning", "id": "rs_001", "summary": []}
            if t.reasoning:
                item["summary"] = [{"type": "summary_text", "text": t.reasoning}]
            if t.reasoning_signature is not None:
                item["encrypted_content"] = t.reasoning_signature
            items.append(item)
        if t.text is not None:
            items.append(
                {
                    "type": "message",
                    "id": "msg_001",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": t.text, "annotations": []}],
                }
            )
        for i, c in enumerate(t.tool_calls):
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_{i:03d}",
                    "call_id": c.id or f"call_{i:03d}",
                    "name": c.name,
                    "arguments": c.arguments,
                    "status": "completed",
                }
            )
        return items

    def _response(self, t: ModelTurn, req: TwinRequest, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        usage = {
            "input_tokens": t.input_tokens,
            "input_tokens_details": {"cached_tokens": t.cache_read_tokens or 0},
            "output_tokens": t.output_tokens,
            "output_tokens_details": {"reasoning_tokens": t.reasoning_tokens or 0},
            "total_tokens": t.input_tokens + t.output_tokens,
        }
        return {
            "id": "resp_001",
            "object": "response",
            "created_at": 1700000000,
            "model": (req.body or {}).get("model", ""),
            "status": status,
            "output": output,
            "usage": usage if status != "in_progress" else None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        }

    def render_json(self, t: ModelTurn, req: TwinRequest) -> dict[str, Any]:
        return self._response(t, req, t.finish or "completed", self._items(t))

    def render_sse(self, t: ModelTurn, req: TwinRequest) -> list[bytes]:
        seq = iter(range(1, 10_000))
        frames: list[bytes] = []

        def emit(kind: str, **payload: Any) -> None:
            frames.append(sse(kind, {"type": kind, "sequence_number": next(seq), **payload}))

        emit("response.created", response=self._response(t, req, "in_progress", []))
        emit("response.in_progress", response=self._response(t, req, "in_progress", []))
        for name, payload in t.extra_events:
            frames.append(sse(name, {"type": name, **payload}))
        items = self._items(t)
        calls = []
        for idx, item in enumerate(items):
            if item["type"] == "reasoning":
                emit("response.output_item.added", output_index=idx, item={**item, "summary": []})
                if t.reasoning:
                    emit(
                        "response.reasoning_summary_part.added",
                        item_id=item["id"],
                        output_index=idx,
                        summary_index=0,
                        part={"type": "summary_text", "text": ""},
                    )
                    emit(
                        "response.reasoning_summary_text.delta",
                        item_id=item["id"],
                        output_index=idx,
                        summary_index=0,
                        delta=t.reasoning,
                    )
                    emit(
                        "response.reasoning_summary_text.done",
                        item_id=item["id"],
                        output_index=idx,
                        summary_index=0,
                        text=t.reasoning,
                    )
                emit("response.output_item.done", output_index=idx, item=item)
            elif item["type"] == "message":
                emit(
                    "response.output_item.added",
                    output_index=idx,
                    item={**item, "status": "in_progress", "content": []},
                )
                emit(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=idx,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
                for chunk in t.text_chunks():
                    emit(
                        "response.output_text.delta", item_id=item["id"], output_index=idx, content_index=0, delta=chunk
                    )
                emit("response.output_text.done", item_id=item["id"], output_index=idx, content_index=0, text=t.text)
                emit(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=idx,
                    content_index=0,
                    part=item["content"][0],
                )
                emit("response.output_item.done", output_index=idx, item=item)
            else:
                calls.append((idx, item))
        # parallel calls: all announced, then argument deltas interleaved across items
        for idx, item in calls:
            emit(
                "response.output_item.added", output_index=idx, item={**item, "arguments": "", "status": "in_progress"}
            )
        pieces = {idx: split(item["arguments"], 3) for idx, item in calls}
        for k in range(3):
            for idx, item in calls:
                if k < len(pieces[idx]):
                    emit(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=idx,
                        delta=pieces[idx][k],
                    )
        for idx, item in calls:
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=idx,
                arguments=item["arguments"],
            )
            emit("response.output_item.done", output_index=idx, item=item)
        status = t.finish or "completed"
        emit(f"response.{status}", response=self._response(t, req, status, items))
        return frames


# -- OpenAI-compatible Chat Completions --------------------------------------------------------
class ChatWire(OpenAIWire):
    name = "openai_compatible"
    routes = ("/v1/chat/completions",)

    def render_json(self, t: ModelTurn, req: TwinRequest) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": t.text}
        if t.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id or f"call_{i:03d}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for i, c in enumerate(t.tool_calls)
            ]
        finish = t.finish or ("tool_calls" if t.tool_calls else "stop")
        return {
            "id": "chatcmpl-001",
            "object": "chat.completion",
            "model": (req.body or {}).get("model", ""),
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": t.input_tokens,
                "completion_tokens": t.output_tokens,
                "total_tokens": t.input_tokens + t.output_tokens,
            },
        }

    def render_sse(self, t: ModelTurn, req: TwinRequest) -> list[bytes]:
        base = {"id": "chatcmpl-001", "object": "chat.completion.chunk", "model": (req.body or {}).get("model", "")}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        frames = [chunk({"role": "assistant", "content": ""})]
        frames += [chunk({"content": piece}) for piece in t.text_chunks()]
        for i, c in enumerate(t.tool_calls):
            frames.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": c.id or f"call_{i:03d}",
                                "type": "function",
                                "function": {"name": c.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            frames += [
                chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in split(c.arguments, 3)
            ]
        frames.append(chunk({}, t.finish or ("tool_calls" if t.tool_calls else "stop")))
        frames.append(
            sse(
                None,
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": t.input_tokens,
                        "completion_tokens": t.output_tokens,
                        "total_tokens": t.input_tokens + t.output_tokens,
                    },
                },
            )
        )
        frames.append(sse(None, "[DONE]"))
        return frames
