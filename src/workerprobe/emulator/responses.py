"""`/ai/v1/responses` as Workers AI serves it: the Responses API for the GPT-OSS models only,
non-streaming (cloudflare-docs PR #32116; late-2026-updates.md).

What no stored source says, and is therefore assumed here (each marked where it is decided):
- another model answers 400 / 5006 (bad input), as Workers AI answers a body a model's schema
  does not take;
- `stream: true` is answered with the whole response as JSON (gpt-oss has answered `stream: true`
  with plain JSON on `/ai/run`; reference §2.2);
- nothing is stored: `previous_response_id` and `conversation` are 400 / 5006, `store` is ignored
  (the response says `store: false`), and there is no `GET /ai/v1/responses/{id}` (404);
- the output is a `reasoning` item, then the `message`, as OpenAI's gpt-oss gives them.

The request is read into the chat body the model also takes (`messages`), so that the prompt, its
limits, tools and JSON mode are validated and generated exactly as for chat completions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from workerprobe.catalogue import Model
from workerprobe.emulator.errors import BadInput
from workerprobe.emulator.generation import Completion

__all__ = ["as_chat", "response"]


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadInput(f"Type mismatch of '{where}', '{type(content).__name__}' not in 'string', 'array'")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text"):
            raise BadInput(f"Value at '{where}/{j}/type' is not a text part")
        texts.append(str(part.get("text") or ""))
    return "\n".join(texts)


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadInput("required properties at '/' are 'input' (a string or a non-empty array)")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadInput(f"Type mismatch of '/input/{i}', not an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = "system" if item.get("role") == "developer" else item.get("role")
            if role not in ("user", "assistant", "system"):
                raise BadInput(f"Value at '/input/{i}/role' must be one of 'user', 'assistant', 'system', 'developer'")
            out.append({"role": role, "content": _text(item.get("content"), f"/input/{i}/content")})
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or ""),
                "type": "function",
                "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "{}")},
            }
            out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id") or ""),
                    "content": str(item.get("output") or ""),
                }
            )
        elif kind != "reasoning":
            raise BadInput(f"Value at '/input/{i}/type' is not supported: {kind!r}")
    return out


def as_chat(body: Any, model: Model) -> dict[str, Any]:
    """The chat body of a Responses request (validated as chat completions are)."""
    if not isinstance(body, dict):
        raise BadInput("Type mismatch of '/', not an object")
    if not model.responses_api:  # assumed: the code Workers AI gives a body a model does not take
        raise BadInput(f"model '{model.name}' does not support the Responses API (/v1/responses)")
    for field in ("previous_response_id", "conversation"):  # assumed: nothing is stored
        if body.get(field) is not None:
            raise BadInput(f"'{field}' is not supported: responses are not stored")
    messages = _messages(body.get("input"))
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    chat: dict[str, Any] = {"messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        chat["tools"] = [
            {"type": "function", "function": {k: t.get(k) for k in ("name", "description", "parameters") if k in t}}
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("name"):
            chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif isinstance(choice, str):
            chat["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": fmt.get("schema") or {"type": "object"}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return chat


def response(model_name: str, body: dict[str, Any], completion: Completion, usage: dict[str, Any]) -> dict[str, Any]:
    """The Response object of a whole answer."""
    output: list[dict[str, Any]] = [
        {
            "type": "reasoning",
            "id": f"rs_{uuid.uuid4().hex}",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "The user asks; answer directly."}],
        }
    ]
    if completion.text or not completion.tool_calls:
        text = {"type": "output_text", "text": completion.text, "annotations": [], "logprobs": []}
        status = "incomplete" if completion.finish == "length" else "completed"
        output.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex}",
                "status": status,
                "role": "assistant",
                "content": [text],
            }
        )
    for call in completion.tool_calls:
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex}",
                "call_id": call.id,
                "name": call.name,
                "arguments": orjson.dumps(call.arguments).decode(),
                "status": "completed",
            }
        )
    cut = completion.finish == "length"
    prompt, made = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if cut else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model_name,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": None},
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": made,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + made,
        },
        "metadata": body.get("metadata") or {},
    }
