"""OpenAI Chat Completions <-> Workers AI `/ai/run`, as pure functions: a chat request as the chat
core's `Generation`, and text, tool calls, usage and finish reason from whatever result or stream
event Workers AI sends.

- temperature is forwarded unchanged: OpenAI's 0-2 lies inside Workers AI's 0-5, and 0 stays
  greedy (seeds are folded into Workers AI's range by `Generation.upstream_body`).
- `stop` is applied by the gateway (Workers AI has no stop parameter).
- `finish_reason` is "length" whenever the completion reached its limit (the native result has
  no finish reason at all: never a silent "stop"), "tool_calls" when the model called a tool.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from workerprobe import tokens
from workerprobe.gateway.chat.generation import Caller, Generation, Message, json_format
from workerprobe.gateway.chat.protocol import ChatCompletionRequest
from workerprobe.gateway.errors import BadRequest
from workerprobe.gateway.protocol import ResponseFormat, declared
from workerprobe.ids import unique_hex

__all__ = [
    "SPLIT_HEADER",
    "as_text",
    "counted_usage",
    "cut_at_stop",
    "event_parts",
    "finish_reason",
    "generation_of",
    "normalise",
    "openai_tool_call",
    "segments",
    "text_content",
]

SPLIT_HEADER = "x-workerprobe-split"
_PARAGRAPHS = re.compile(r"\n\s*\n")


def generation_of(request: ChatCompletionRequest, caller: Caller) -> Generation:
    """The chat core's request for a chat completion. Refuses what Workers AI cannot do rather
    than dropping it."""
    if request.n is not None and request.n > 1:
        raise BadRequest("n > 1 is not supported: Workers AI returns one choice per request", param="n")
    extra = request.model_extra or {}
    # Refused rather than dropped: a client that asked for them would silently get something else.
    if extra.get("logit_bias"):
        raise BadRequest("logit_bias is not supported: Workers AI takes no token biases", param="logit_bias")
    if extra.get("logprobs") is True or extra.get("top_logprobs"):
        raise BadRequest("logprobs are not supported: Workers AI returns no log probabilities", param="logprobs")
    messages: list[Message] = []
    for i, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        out: Message = {"role": role, "content": text_content(i, message.content)}
        if message.tool_calls:
            out["tool_calls"] = [declared(call) for call in message.tool_calls]
        if message.tool_call_id:
            out["tool_call_id"] = message.tool_call_id
        messages.append(out)
    stops = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    if any(not s for s in stops):
        raise BadRequest("stop sequences must not be empty", param="stop")
    choice = request.tool_choice
    return Generation(
        model=request.model,
        messages=messages,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        frequency_penalty=request.frequency_penalty,
        presence_penalty=request.presence_penalty,
        seed=request.seed,
        stops=stops,
        tools=[declared(tool) for tool in request.tools or ()],
        tool_choice=choice if choice is None or isinstance(choice, str) else declared(choice),
        response_format=response_format_body(request.response_format),
        stream=bool(request.stream),
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        caller=caller,
    )


def text_content(index: int, content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise BadRequest(
                f"Content parts of type {kind!r} are not supported by this gateway (only 'text')",
                param=f"messages.[{index}].content.[{j}].type",
            )
    return "\n".join(texts)


def openai_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call in OpenAI's form, whichever form Workers AI used."""
    if "function" in call:
        function = dict(call["function"])
        if not isinstance(function.get("arguments"), str):
            function["arguments"] = orjson.dumps(function.get("arguments") or {}).decode()
        return {"id": call.get("id") or f"call_{unique_hex()[8:]}", "type": "function", "function": function}
    arguments = call.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {
        "id": f"call_{unique_hex()[8:]}",
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": arguments},
    }


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    positions = [i for i in (text.find(s) for s in stops) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


def segments(text: str, how: str) -> list[str]:
    """`text` cut into parts: by paragraph ("paragraphs"), or paragraphs packed into parts of
    at most N tokens ("tokens:N"; a longer paragraph is cut at token boundaries)."""
    paragraphs = [p.strip() for p in _PARAGRAPHS.split(text) if p.strip()]
    if how == "paragraphs":
        return paragraphs
    kind, _, size = how.partition(":")
    if kind != "tokens" or not size.isdigit() or int(size) < 1:
        raise BadRequest(f"{SPLIT_HEADER} must be 'paragraphs' or 'tokens:N' (N >= 1), not {how!r}")
    budget = int(size)
    out: list[str] = []
    current: list[str] = []
    used = 0
    for paragraph in paragraphs:
        pieces = tokens.split(paragraph)
        if len(pieces) > budget:  # a paragraph over the budget: on its own, cut into parts
            if current:
                out.append("\n\n".join(current))
                current, used = [], 0
            out.extend("".join(pieces[i : i + budget]).strip() for i in range(0, len(pieces), budget))
            continue
        if used + len(pieces) > budget and current:
            out.append("\n\n".join(current))
            current, used = [], 0
        current.append(paragraph)
        used += len(pieces)
    if current:
        out.append("\n\n".join(current))
    return [part for part in out if part]


def response_format_body(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """OpenAI's response_format as the core's (Workers AI's: a bare JSON Schema)."""
    if response_format is None:
        return None
    if response_format.type == "json_schema" and response_format.json_schema is None:
        raise BadRequest("response_format.json_schema is required", param="response_format.json_schema")
    schema = response_format.json_schema.schema_ if response_format.json_schema is not None else None
    return json_format(response_format.type, schema)


def normalise(result: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Text, OpenAI-form tool calls, usage and finish reason from any Workers AI result shape."""
    if not isinstance(result, dict):
        return "", [], None, None
    if isinstance(result.get("choices"), list) and result["choices"]:
        choice = result["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
        calls = [openai_tool_call(c) for c in message.get("tool_calls") or []]
        return as_text(content), calls, result.get("usage"), choice.get("finish_reason")
    response = result.get("response", result.get("response_text"))
    calls = [openai_tool_call(c) for c in result.get("tool_calls") or []]
    return as_text(response), calls, result.get("usage"), None


def as_text(value: Any) -> str:
    """JSON mode answers with an object: clients get it as a JSON string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def event_parts(event: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Text piece, tool calls, cumulative usage and finish reason of one upstream stream event."""
    if "__result__" in event:  # the upstream answered a stream request with plain JSON
        return normalise(event["__result__"])
    if "choices" in event:
        # OpenAI-shaped chunk: its per-chunk usage is incremental, so it is ignored here.
        choices = event.get("choices") or []
        if not choices:
            return "", [], None, None
        delta = choices[0].get("delta") or {}
        calls = [openai_tool_call(c) for c in delta.get("tool_calls") or []]
        return as_text(delta.get("content")), calls, None, choices[0].get("finish_reason")
    calls = [openai_tool_call(c) for c in event.get("tool_calls") or []]
    return as_text(event.get("response")), calls, event.get("usage"), None


def counted_usage(upstream: dict[str, Any] | None, body: dict[str, Any], text: str) -> dict[str, Any]:
    """The usage of one upstream call (estimated with the shared tokenizer when it gave none)."""
    if upstream and isinstance(upstream.get("completion_tokens"), int):
        prompt = int(upstream.get("prompt_tokens") or 0)
        completion = int(upstream["completion_tokens"])
    else:
        prompt = sum(tokens.count(str(m.get("content") or "")) for m in body["messages"])
        completion = tokens.count(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(calls: list[dict[str, Any]], stopped: bool, cut: bool) -> str:
    """ "tool_calls", "stop" at a stop sequence or a natural end, "length" when the answer was
    cut at a token limit (never a silent "stop")."""
    if calls:
        return "tool_calls"
    if stopped:
        return "stop"
    return "length" if cut else "stop"
