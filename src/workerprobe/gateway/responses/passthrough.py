"""A response of a GPT-OSS model through the upstream's own `/ai/v1/responses`, as pure functions:
the request the upstream gets (the context's items, without what the gateway keeps itself:
`previous_response_id`, `conversation`, `store`, `stream`, `metadata`), and its answer read back
into the chat core's `Outcome` (text, tool calls, usage, finish) and the reasoning items kept."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from workerprobe.catalogue import Model
from workerprobe.gateway.chat.plan import Outcome
from workerprobe.gateway.errors import GatewayError
from workerprobe.gateway.protocol import declared
from workerprobe.gateway.responses import items as it
from workerprobe.gateway.responses.protocol import ResponseCreate

__all__ = ["outcome", "replay", "request"]


def _item(item: dict[str, Any]) -> dict[str, Any] | None:
    """A stored item as the upstream takes it (reasoning items are not sent again)."""
    kind = item.get("type")
    if kind == "message":
        return {"type": "message", "role": item["role"], "content": it.text_of(item)}
    if kind == "function_call":
        return {k: item[k] for k in ("type", "call_id", "name", "arguments")}
    if kind == "function_call_output":
        return {k: item[k] for k in ("type", "call_id", "output")}
    return None


def request(body: ResponseCreate, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The upstream's request: the model, the context's items and the generation's settings."""
    out: dict[str, Any] = {"model": body.model, "input": [i for i in map(_item, items) if i is not None]}
    if body.instructions:
        out["instructions"] = body.instructions
    for name in ("max_output_tokens", "temperature", "top_p", "parallel_tool_calls"):
        value = getattr(body, name)
        if value is not None:
            out[name] = value
    if body.tools:
        out["tools"] = body.tools
    if body.tool_choice is not None:
        out["tool_choice"] = body.tool_choice if isinstance(body.tool_choice, str) else declared(body.tool_choice)
    if body.text is not None:
        out["text"] = declared(body.text)
    return out


def outcome(result: dict[str, Any], model: Model) -> tuple[Outcome, list[dict[str, Any]]]:
    """The upstream's Response as an outcome, and its reasoning items (kept in the output)."""
    output = [o for o in result.get("output") or [] if isinstance(o, dict)]
    if result.get("status") == "failed":
        error: dict[str, Any] = result["error"] if isinstance(result.get("error"), dict) else {}
        raise GatewayError(f"Workers AI could not answer: {error.get('message') or 'the response failed'}")
    text = "".join(
        str(part.get("text") or "")
        for o in output
        if o.get("type") == "message"
        for part in o.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    )
    calls = [
        {
            "id": str(o.get("call_id") or o.get("id") or it.new_id("call")),
            "type": "function",
            "function": {"name": str(o.get("name") or ""), "arguments": str(o.get("arguments") or "{}")},
        }
        for o in output
        if o.get("type") == "function_call"
    ]
    usage: dict[str, Any] = result["usage"] if isinstance(result.get("usage"), dict) else {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    details: dict[str, Any] = result["incomplete_details"] if isinstance(result.get("incomplete_details"), dict) else {}
    if result.get("status") == "incomplete" and details.get("reason") == "max_output_tokens":
        finish = "length"
    elif result.get("status") == "incomplete" and details.get("reason") == "content_filter":
        finish = "content_filter"
    else:
        finish = "tool_calls" if calls else "stop"
    counted = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    reasoning = [
        {"type": "reasoning", "id": str(o.get("id") or it.new_id("rs")), "summary": o.get("summary") or []}
        for o in output
        if o.get("type") == "reasoning"
    ]
    return Outcome(text, calls, counted, finish, model=model), reasoning


async def replay(done: Outcome) -> AsyncGenerator[str | None | Outcome]:
    """A whole answer as the chat core's stream items: its text, then the outcome."""
    if done.text:
        yield done.text
    yield done
