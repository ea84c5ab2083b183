"""Wire shapes of results and stream events: native Workers AI, OpenAI-shaped `/ai/run`
results of newer models, and Cloudflare's OpenAI-compatible `/ai/v1` endpoints."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import orjson

from workerprobe.catalogue import Model
from workerprobe.emulator.generation import Completion, ToolCall
from workerprobe.emulator.streams import StreamEvent

__all__ = ["native_result", "openai_completion", "run_stream_events", "usage", "v1_stream_events"]

_PADDING = "abdefghijklmnoprstuvxyz1234567890abdefghijklmnoprstuvxyz1234567890"
_DONE = StreamEvent(b"data: [DONE]\n\n", token=False)


def usage(model: Model, prompt_tokens: int, completion: Completion, neurons: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": prompt_tokens + completion.completion_tokens,
    }
    if model.result == "openai":  # newer models report cached tokens and neurons too
        out["prompt_tokens_details"] = {"cached_tokens": 0}
        out["neurons"] = neurons
    return out


def _tool_calls(form: str, calls: list[ToolCall]) -> list[dict[str, Any]]:
    if form == "legacy":
        return [{"name": c.name, "arguments": c.arguments} for c in calls]
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()}}
        for c in calls
    ]


def native_result(model: Model, completion: Completion, usage_: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if not completion.tool_calls:
        # JSON mode answers with an object, not a string.
        result["response"] = completion.json if completion.json is not None else completion.text
    result["tool_calls"] = _tool_calls(model.tool_calls, completion.tool_calls)
    result["usage"] = usage_
    return result


def openai_completion(model_name: str, model: Model, completion: Completion, usage_: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
    if model.result == "openai":
        message["reasoning_content"] = None
    if completion.tool_calls:
        message["tool_calls"] = _tool_calls("openai", completion.tool_calls)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish, "logprobs": None}],
        "usage": usage_,
    }


def _pad(rng: random.Random) -> str:
    return _PADDING[: rng.randint(1, 48)]


def _event(obj: dict[str, Any], token: bool = False) -> StreamEvent:
    return StreamEvent(b"data: " + orjson.dumps(obj) + b"\n\n", token)


def run_stream_events(model: Model, completion: Completion, usage_: dict[str, Any], padding: bool) -> list[StreamEvent]:
    """The SSE events of `stream: true` on `/ai/run`, in the model's result shape."""
    rng = random.Random()

    def pad(obj: dict[str, Any]) -> dict[str, Any]:
        if padding:
            obj["p"] = _pad(rng)
        return obj

    events: list[StreamEvent] = []
    if model.result == "native":
        events.append(_event(pad({"response": "", "tool_calls": []})))
        events.extend(_event(pad({"response": piece, "tool_calls": []}), True) for piece in completion.pieces)
        if completion.tool_calls:
            events.append(_event(pad({"tool_calls": _tool_calls(model.tool_calls, completion.tool_calls)}), True))
        events.append(_event(pad({"tool_calls": []})))
    else:
        base = {
            "created": int(time.time()),
            "id": uuid.uuid4().hex,
            "model": model.name,
            "object": "chat.completion.chunk",
        }

        def chunk(delta: dict[str, Any], finish: str | None, step_usage: dict[str, Any] | None) -> StreamEvent:
            body: dict[str, Any] = {
                "choices": [{"delta": delta, "finish_reason": finish, "index": 0, "logprobs": None}],
                **base,
            }
            if step_usage is not None:
                body["usage"] = step_usage
            return _event(pad(body), bool(delta.get("content")) or "tool_calls" in delta)

        # Per-chunk usage is incremental; the final native usage event is cumulative.
        events.append(
            chunk(
                {"content": "", "reasoning_content": None, "role": "assistant"},
                None,
                {
                    "prompt_tokens": usage_["prompt_tokens"],
                    "completion_tokens": 0,
                    "total_tokens": usage_["prompt_tokens"],
                },
            )
        )
        for piece in completion.pieces:
            events.append(
                chunk({"content": piece}, None, {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1})
            )
        if completion.tool_calls:
            calls = [{"index": i, **c} for i, c in enumerate(_tool_calls(model.tool_calls, completion.tool_calls))]
            events.append(chunk({"tool_calls": calls}, None, None))
        events.append(chunk({}, completion.finish, None))
        events.append(_event(pad({"choices": [], **base, "usage": usage_})))
    events.append(_event({"response": "", "usage": usage_}))
    events.append(_DONE)
    return events


def v1_stream_events(
    model_name: str, model: Model, completion: Completion, usage_: dict[str, Any]
) -> list[StreamEvent]:
    """Chunks of Cloudflare's `/ai/v1/chat/completions`: `finish_reason` only on the usage chunk."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_name,
    }
    events = [
        _event(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
                ],
            }
        )
    ]
    for piece in completion.pieces:
        events.append(
            _event(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}],
                },
                True,
            )
        )
    if completion.tool_calls:
        calls = [{"index": i, **c} for i, c in enumerate(_tool_calls("openai", completion.tool_calls))]
        events.append(
            _event(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None, "logprobs": None}],
                },
                True,
            )
        )
    events.append(
        _event(
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": completion.finish, "logprobs": None}],
                "usage": usage_,
            }
        )
    )
    events.append(_DONE)
    return events
