"""Chat Completions over Workers AI: translate the request, call `/ai/run`, and answer exactly as
OpenAI clients expect, plain or streamed.

- `max_tokens` / `max_completion_tokens` are forwarded; when neither is set the model's default
  (256 for the classic models) still applies upstream, so it is the limit truncation is judged by.
- `finish_reason` is "length" whenever the completion reached that limit (the native result has
  no finish reason at all: never a silent "stop"), "tool_calls" when the model called a tool.
- temperature is forwarded unchanged: OpenAI's 0-2 lies inside Workers AI's 0-5, and 0 stays
  greedy. Seeds outside Workers AI's 1-9,999,999,999 are folded into it (deterministically).
- `stop` is applied by the gateway (Workers AI has no stop parameter), also across chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from workerprobe import sse, tokens
from workerprobe.cloudflare import WorkersAI
from workerprobe.cloudflare.errors import UpstreamFailure
from workerprobe.gateway.chat.protocol import ChatCompletionRequest, ResponseFormat
from workerprobe.gateway.errors import BadRequest, GatewayError, from_upstream
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter, Resolved
from workerprobe.gateway.protocol import declared
from workerprobe.ids import unique_hex

__all__ = ["ChatService", "Outcome", "Prepared"]

_SEED_MAX = 9_999_999_999


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a completion ended: its text, OpenAI-form tool calls, usage and finish reason."""

    text: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any]
    finish: str


@dataclass(slots=True)
class Prepared:
    resolved: Resolved
    body: dict[str, Any]
    limit: int  # the max_tokens in force upstream
    stops: list[str]
    include_usage: bool
    id: str = field(default_factory=lambda: f"chatcmpl-{unique_hex()}")
    created: int = field(default_factory=lambda: int(time.time()))


def _text_content(index: int, content: Any) -> str:
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


def _openai_tool_call(call: dict[str, Any]) -> dict[str, Any]:
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


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    positions = [i for i in (text.find(s) for s in stops) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class ChatService:
    def __init__(
        self,
        upstream: WorkersAI,
        router: ModelRouter,
        metrics: Metrics,
        keepalive_s: float,
        default_max_tokens: dict[str, int] | None = None,
    ) -> None:
        self.default_max_tokens = default_max_tokens or {}
        self.upstream = upstream
        self.router = router
        self.metrics = metrics
        self.keepalive_s = keepalive_s

    def _spent(self, prepared: Prepared, usage: dict[str, Any]) -> None:
        self.metrics.usage(prepared.resolved.model, usage["prompt_tokens"], usage["completion_tokens"])

    def prepare(self, request: ChatCompletionRequest) -> Prepared:
        if request.n is not None and request.n > 1:
            raise BadRequest("n > 1 is not supported: Workers AI returns one choice per request", param="n")
        resolved = self.router.resolve(request.model, "text-generation")
        model = resolved.model
        messages: list[dict[str, Any]] = []
        for i, message in enumerate(request.messages):
            role = "system" if message.role == "developer" else message.role
            out: dict[str, Any] = {"role": role, "content": _text_content(i, message.content)}
            if message.tool_calls:
                out["tool_calls"] = [declared(call) for call in message.tool_calls]
            if message.tool_call_id:
                out["tool_call_id"] = message.tool_call_id
            messages.append(out)
        body: dict[str, Any] = {"messages": messages}
        max_tokens = request.max_completion_tokens or request.max_tokens
        if max_tokens is None:  # the configured deliberate default, if any, beats the upstream's
            max_tokens = self.default_max_tokens.get(model.name, self.default_max_tokens.get("*"))
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.seed is not None:
            body["seed"] = request.seed if 1 <= request.seed <= _SEED_MAX else request.seed % _SEED_MAX + 1
        if request.tools and request.tool_choice != "none":
            body["tools"] = [declared(tool) for tool in request.tools]
            if request.tool_choice is not None:
                choice = request.tool_choice
                body["tool_choice"] = choice if isinstance(choice, str) else declared(choice)
        if request.response_format is not None:
            body.update(_response_format(request.response_format))
        stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        if any(not s for s in stops):
            raise BadRequest("stop sequences must not be empty", param="stop")
        return Prepared(
            resolved=resolved,
            body=body,
            limit=max_tokens or model.default_max_tokens or 256,
            stops=stops,
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )

    # -- plain -------------------------------------------------------------------------------

    async def outcome(self, prepared: Prepared) -> Outcome:
        """Run a completion upstream, not streamed."""
        name = prepared.resolved.model.name
        started = time.perf_counter()
        try:
            result = await self.upstream.run(name, prepared.body)
        except UpstreamFailure as exc:
            raise from_upstream(exc, prepared.resolved.requested) from None
        finally:
            self.metrics.upstream(name, time.perf_counter() - started)
        text, calls, usage, upstream_finish = _normalise(result)
        text, stopped = _cut_at_stop(text, prepared.stops)
        final_usage = _usage(usage, prepared, text)
        self._spent(prepared, final_usage)
        finish = _finish(prepared, final_usage["completion_tokens"], calls, upstream_finish, stopped)
        return Outcome(text, calls, final_usage, finish)

    async def complete(self, prepared: Prepared) -> dict[str, Any]:
        done = await self.outcome(prepared)
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

    # -- streamed ----------------------------------------------------------------------------

    async def stream_items(self, prepared: Prepared) -> AsyncGenerator[str | None | Outcome]:
        """A streamed completion as text pieces, None for each keep-alive interval without
        news, and the `Outcome` last. Upstream errors before the first event raise at the first
        `anext`; later ones raise a GatewayError from the iteration."""
        name = prepared.resolved.model.name
        started = time.perf_counter()
        try:
            events = await self.upstream.stream(name, prepared.body)
            first = await anext(events, None)
        except UpstreamFailure as exc:
            raise from_upstream(exc, prepared.resolved.requested) from None
        finally:
            self.metrics.upstream(name, time.perf_counter() - started)
        return self._items(prepared, events, first)

    async def _items(
        self, prepared: Prepared, events: AsyncGenerator[dict[str, Any]], first: dict[str, Any] | None
    ) -> AsyncGenerator[str | None | Outcome]:
        emitted: list[str] = []
        calls: list[dict[str, Any]] = []
        usage: dict[str, Any] | None = None
        upstream_finish: str | None = None
        hold = max((len(s) for s in prepared.stops), default=1) - 1
        pending = ""
        stopped = False
        relayed = self._with_keepalive(events, first)
        try:
            async for item in relayed:
                if item is None:
                    yield None
                    continue
                piece, new_calls, event_usage, finish = _event_parts(item)
                calls.extend(new_calls)
                usage = event_usage or usage
                upstream_finish = finish or upstream_finish
                if not piece:
                    continue
                pending += piece
                if prepared.stops:
                    text, stopped = _cut_at_stop(pending, prepared.stops)
                    if stopped:
                        pending = text
                        break
                    # Hold back what could be the start of a stop sequence split across chunks.
                    ready, pending = (pending[:-hold], pending[-hold:]) if hold else (pending, "")
                else:
                    ready, pending = pending, ""
                if ready:
                    emitted.append(ready)
                    yield ready
        except UpstreamFailure as exc:
            raise from_upstream(exc, prepared.resolved.requested) from None
        finally:
            await relayed.aclose()
            await events.aclose()
        if pending:
            emitted.append(pending)
            yield pending
        text = "".join(emitted)
        final_usage = _usage(usage, prepared, text)
        self._spent(prepared, final_usage)
        finish = _finish(prepared, final_usage["completion_tokens"], calls, upstream_finish, stopped)
        yield Outcome(text, calls, final_usage, finish)

    async def open_stream(self, prepared: Prepared) -> AsyncIterator[bytes]:
        """The bytes of a streamed chat completion; see `stream_items` for errors."""
        return self._relay(prepared, await self.stream_items(prepared))

    def _chunk(self, prepared: Prepared, choices: list[dict[str, Any]], **extra: Any) -> bytes:
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

    def _delta(self, prepared: Prepared, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._chunk(prepared, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])

    async def _relay(self, prepared: Prepared, items: AsyncGenerator[str | None | Outcome]) -> AsyncIterator[bytes]:
        yield self._delta(prepared, {"role": "assistant", "content": ""})
        try:
            async for item in items:
                if item is None:
                    yield sse.comment()
                elif isinstance(item, str):
                    yield self._delta(prepared, {"content": item})
                else:
                    if item.tool_calls:
                        calls = [{"index": i, **c} for i, c in enumerate(item.tool_calls)]
                        yield self._delta(prepared, {"tool_calls": calls})
                    yield self._delta(prepared, {}, item.finish)
                    if prepared.include_usage:
                        yield self._chunk(prepared, [], usage=item.usage)
        except GatewayError as error:
            self.metrics.error(error.code or error.type)
            yield sse.encode_json(error.body())
        finally:
            await items.aclose()
        yield sse.DONE

    async def _with_keepalive(
        self, events: AsyncIterator[dict[str, Any]], first: dict[str, Any] | None
    ) -> AsyncGenerator[dict[str, Any] | None]:
        """Upstream events, with None whenever `keepalive_s` passes without one."""
        if first is None:
            return
        yield first
        while True:
            step = asyncio.ensure_future(anext(events, None))
            while True:
                done, _ = await asyncio.wait({step}, timeout=self.keepalive_s)
                if done:
                    break
                yield None
            item = step.result()
            if item is None:
                return
            yield item


def _response_format(response_format: ResponseFormat) -> dict[str, Any]:
    """OpenAI's response_format as Workers AI's: a bare JSON Schema, not OpenAI's wrapper."""
    if response_format.type == "text":
        return {}
    if response_format.type == "json_object":
        return {"response_format": {"type": "json_object"}}
    if response_format.json_schema is None:
        raise BadRequest("response_format.json_schema is required", param="response_format.json_schema")
    return {"response_format": {"type": "json_schema", "json_schema": response_format.json_schema.schema_}}


def _normalise(result: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Text, OpenAI-form tool calls, usage and finish reason from any Workers AI result shape."""
    if not isinstance(result, dict):
        return "", [], None, None
    if isinstance(result.get("choices"), list) and result["choices"]:
        choice = result["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
        calls = [_openai_tool_call(c) for c in message.get("tool_calls") or []]
        return _as_text(content), calls, result.get("usage"), choice.get("finish_reason")
    response = result.get("response", result.get("response_text"))
    calls = [_openai_tool_call(c) for c in result.get("tool_calls") or []]
    return _as_text(response), calls, result.get("usage"), None


def _as_text(value: Any) -> str:
    """JSON mode answers with an object: clients get it as a JSON string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _event_parts(event: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Text piece, tool calls, cumulative usage and finish reason of one upstream stream event."""
    if "__result__" in event:  # the upstream answered a stream request with plain JSON
        return _normalise(event["__result__"])
    if "choices" in event:
        # OpenAI-shaped chunk: its per-chunk usage is incremental, so it is ignored here.
        choices = event.get("choices") or []
        if not choices:
            return "", [], None, None
        delta = choices[0].get("delta") or {}
        calls = [_openai_tool_call(c) for c in delta.get("tool_calls") or []]
        return _as_text(delta.get("content")), calls, None, choices[0].get("finish_reason")
    calls = [_openai_tool_call(c) for c in event.get("tool_calls") or []]
    return _as_text(event.get("response")), calls, event.get("usage"), None


def _usage(upstream: dict[str, Any] | None, prepared: Prepared, text: str) -> dict[str, Any]:
    if upstream and isinstance(upstream.get("completion_tokens"), int):
        prompt = int(upstream.get("prompt_tokens") or 0)
        completion = int(upstream["completion_tokens"])
    else:  # no usage upstream: estimate with the shared tokenizer
        prompt = sum(tokens.count(str(m.get("content") or "")) for m in prepared.body["messages"])
        completion = tokens.count(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(
    prepared: Prepared, completion_tokens: int, calls: list[dict[str, Any]], upstream: str | None, stopped: bool
) -> str:
    if calls:
        return "tool_calls"
    if stopped:
        return "stop"
    if completion_tokens >= prepared.limit or upstream == "length":
        return "length"
    return "stop"
