"""A chat completion as the client reads it: the JSON object, or the SSE stream of chunks
(role first, one id, the finish reason once, the usage chunk when asked, `[DONE]` last; an error
after the first byte as an error event in the envelope)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from workerprobe import sse, tokens
from workerprobe.gateway.chat.plan import Outcome, Prepared
from workerprobe.gateway.errors import GatewayError

__all__ = ["completion", "replay", "stream"]


def completion(prepared: Prepared, done: Outcome) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": done.text if not done.tool_calls else (done.text or None),
        "refusal": None,
    }
    if done.tool_calls:
        message["tool_calls"] = done.tool_calls
    return {
        "id": prepared.id,
        "object": "chat.completion",
        "created": prepared.created,
        "model": prepared.resolved.requested,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": done.finish}],
        "usage": done.usage,
    }


def _chunk(prepared: Prepared, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return sse.encode_json(
        {
            "id": prepared.id,
            "object": "chat.completion.chunk",
            "created": prepared.created,
            "model": prepared.resolved.requested,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }
    )


def _delta(prepared: Prepared, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _chunk(prepared, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])


async def stream(
    prepared: Prepared, items: AsyncGenerator[str | None | Outcome], on_error: Callable[[GatewayError], None]
) -> AsyncIterator[bytes]:
    """The SSE bytes of pieces (text), keep-alives (None) and the outcome last."""
    yield _delta(prepared, {"role": "assistant", "content": ""})
    try:
        async for item in items:
            if item is None:
                yield sse.comment()
            elif isinstance(item, str):
                yield _delta(prepared, {"content": item})
            else:
                if item.tool_calls:
                    calls = [{"index": i, **c} for i, c in enumerate(item.tool_calls)]
                    yield _delta(prepared, {"tool_calls": calls})
                yield _delta(prepared, {}, item.finish)
                if prepared.include_usage:
                    yield _chunk(prepared, [], usage=item.usage)
    except GatewayError as error:
        on_error(error)
        yield sse.encode_json(error.body())
    finally:
        await items.aclose()
    yield sse.DONE


async def replay(cached: Outcome) -> AsyncGenerator[str | None | Outcome]:
    """A cached answer as a stream: its text in pieces of a few tokens, then the outcome."""
    pieces = tokens.split(cached.text)
    for i in range(0, len(pieces), 8):
        yield "".join(pieces[i : i + 8])
    yield cached
