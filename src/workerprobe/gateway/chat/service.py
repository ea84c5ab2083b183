"""Chat Completions over Workers AI: translate the request, call `/ai/run`, and answer exactly as
OpenAI clients expect, plain or streamed.

- `max_tokens` / `max_completion_tokens` are forwarded; when neither is set the model's default
  (256 for the classic models) still applies upstream, so it is the limit truncation is judged by.
- `finish_reason` is "length" whenever the completion reached that limit (the native result has
  no finish reason at all: never a silent "stop"), "tool_calls" when the model called a tool.
- temperature is forwarded unchanged: OpenAI's 0-2 lies inside Workers AI's 0-5, and 0 stays
  greedy. Seeds outside Workers AI's 1-9,999,999,999 are folded into it (deterministically).
- `stop` is applied by the gateway (Workers AI has no stop parameter), also across chunks.

The free-plan methods (each switchable, see settings and gateway/freeplan/):
- continuation: an answer the upstream cut at its token limit, below what the client asked for,
  is continued (the answer so far as an assistant turn, then a request to go on) and the parts
  stitched into one answer, plain or streamed, usage summed, bounded in calls and tokens;
- part by part (`x-workerprobe-split: paragraphs | tokens:N`): the last user message is cut into
  parts, each answered with the same instructions, the answers joined in order;
- a prompt over the model's context window is a 400 with the counts, before any upstream call;
- the response cache, budgets and fallback model (freeplan/).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from workerprobe import sse, tokens
from workerprobe.catalogue import Model
from workerprobe.cloudflare.errors import CAPACITY_CODE, CloudflareError, UpstreamFailure
from workerprobe.gateway.chat.protocol import ChatCompletionRequest, ResponseFormat
from workerprobe.gateway.errors import BadRequest, GatewayError, QuotaExceeded, from_upstream
from workerprobe.gateway.freeplan.budget import Budgets
from workerprobe.gateway.freeplan.cache import HEADER as CACHE_HEADER
from workerprobe.gateway.freeplan.cache import CacheDecision, ResponseCache
from workerprobe.gateway.freeplan.retry import Resilient
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter, Resolved
from workerprobe.gateway.protocol import declared
from workerprobe.ids import unique_hex
from workerprobe.settings import GatewaySettings

__all__ = ["Answer", "ChatService", "Outcome", "Prepared", "Streamed", "segments"]

T = TypeVar("T")
_SEED_MAX = 9_999_999_999
CONTINUE = "Continue exactly where you stopped, without repeating anything."
FALLBACK_HEADER = "x-workerprobe-fallback-model"
SPLIT_HEADER = "x-workerprobe-split"
_MAX_SEGMENTS = 64
_PARAGRAPHS = re.compile(r"\n\s*\n")


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
    limit: int  # the max_tokens in force: in total when answers are continued
    stops: list[str]
    include_usage: bool
    key: str = ""  # the client key's identity (budgets)
    model: Model | None = None  # the model called: the resolved one, or its fallback
    explicit: int | None = None  # the client's max_tokens (or the configured default)
    continuing: bool = False  # cut answers are continued, up to `limit` tokens
    segments: list[list[dict[str, Any]]] = field(default_factory=list)  # messages of each part
    cache_key: str | None = None
    cache: CacheDecision | None = None
    headers: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"chatcmpl-{unique_hex()}")
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def called(self) -> Model:
        return self.model or self.resolved.model


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


@dataclass(slots=True)
class _Parts:
    """Where an answer made of upstream calls stands: the segment being answered (part by part),
    its text so far, and its tokens and calls (continuation); totals over all of them."""

    segments: int  # how many segments the answer has
    segment: int = 0
    so_far: str = ""  # the current segment's text
    produced: int = 0  # the current segment's completion tokens
    made: int = 0  # the current segment's upstream calls
    answers: list[str] = field(default_factory=list)  # the finished segments' texts
    prompt: int = 0
    completion: int = 0
    cut: bool = False  # some segment ended at its token limit and was not continued

    @property
    def done(self) -> bool:
        return self.segment >= self.segments

    def text(self) -> str:
        """The answer so far, the segments joined by blank lines."""
        return "\n\n".join(self.answers if self.done else [*self.answers, self.so_far])

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole completion: what the route renders as JSON, and what a run stores."""

    outcome: Outcome
    prepared: Prepared

    @property
    def headers(self) -> dict[str, str]:
        return self.prepared.headers


@dataclass(frozen=True, slots=True)
class Streamed:
    """A completion as it is produced: text pieces, None for a keep-alive, the `Outcome` last."""

    items: AsyncGenerator[str | None | Outcome]
    prepared: Prepared

    @property
    def headers(self) -> dict[str, str]:
        return self.prepared.headers


class ChatService:
    """Chat completions: `create` is the one entry (the route and runs alike); it plans the
    request, looks in the cache, admits it to the budgets and answers it, whole or streamed."""

    def __init__(
        self,
        upstream: Resilient,
        router: ModelRouter,
        metrics: Metrics,
        settings: GatewaySettings,
        budgets: Budgets,
        cache: ResponseCache,
    ) -> None:
        self.settings = settings
        self.default_max_tokens = settings.default_max_tokens
        self.upstream = upstream
        self.router = router
        self.metrics = metrics
        self.keepalive_s = settings.keepalive_s
        self.budgets = budgets
        self.cache = cache
        self.template = router.catalogue.chat_template_tokens

    async def create(
        self,
        request: ChatCompletionRequest,
        *,
        key: str = "",
        cache_control: str | None = None,
        split: str | None = None,
    ) -> Answer | Streamed:
        """The one way through chat: an `Answer`, or a `Streamed` one when the request streams."""
        prepared = self._prepare(request, key=key, cache_control=cache_control, split=split)
        cached = await self._cached(prepared)
        if cached is None:
            await self._admit(prepared)  # budgets: a cache hit costs nothing, so it is always served
        if request.stream:
            return Streamed(await self._stream_items(prepared, cached), prepared)
        return Answer(await self._outcome(prepared, cached), prepared)

    def render(self, answer: Answer) -> dict[str, Any]:
        """The JSON of a whole chat completion."""
        return self._completion(answer.prepared, answer.outcome)

    def render_stream(self, streamed: Streamed) -> AsyncIterator[bytes]:
        """The SSE bytes of a streamed chat completion (errors after the first byte as an event)."""
        return self._relay(streamed.prepared, streamed.items)

    # -- before the upstream -----------------------------------------------------------------

    def _prepare(
        self,
        request: ChatCompletionRequest,
        *,
        key: str = "",
        cache_control: str | None = None,
        split: str | None = None,
    ) -> Prepared:
        if request.n is not None and request.n > 1:
            raise BadRequest("n > 1 is not supported: Workers AI returns one choice per request", param="n")
        extra = request.model_extra or {}
        # Refused rather than dropped: a client that asked for them would silently get something else.
        if extra.get("logit_bias"):
            raise BadRequest("logit_bias is not supported: Workers AI takes no token biases", param="logit_bias")
        if extra.get("logprobs") is True or extra.get("top_logprobs"):
            raise BadRequest("logprobs are not supported: Workers AI returns no log probabilities", param="logprobs")
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
        settings = self.settings
        plain_text = "tools" not in body and "response_format" not in body
        wanted = (
            "*" in settings.continuation_models
            or model.name in settings.continuation_models
            or (bool(key) and key in settings.continuation_keys)
        )
        continuing = plain_text and (wanted or settings.continuation_part_tokens > 0)
        upstream_default = model.default_max_tokens or 256
        if max_tokens is not None:
            limit = max_tokens
        elif continuing and wanted:
            limit = settings.continuation_max_tokens
        else:  # no client limit and continuation not wanted: one call, the upstream's default
            limit, continuing = upstream_default, False
        prepared = Prepared(
            resolved=resolved,
            body=body,
            limit=limit,
            stops=stops,
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            key=key,
            explicit=max_tokens,
            continuing=continuing,
            segments=self._segments(messages, split),
            headers=dict(resolved.headers()),
        )
        self._check_context(prepared)
        prepared.cache_key = self.cache.key(model.name, body, stops)
        if prepared.cache_key is not None:
            prepared.cache = CacheDecision(cache_control)
        return prepared

    def _segments(self, messages: list[dict[str, Any]], split: str | None) -> list[list[dict[str, Any]]]:
        if split is None:
            return [messages]
        last = messages[-1]
        if last["role"] != "user" or not last["content"]:
            raise BadRequest(f"{SPLIT_HEADER} needs the text to process as the last (user) message", param="messages")
        parts = segments(last["content"], split.strip())
        if not parts:
            raise BadRequest("the last message has no text to split", param="messages")
        if len(parts) > _MAX_SEGMENTS:
            raise BadRequest(
                f"the text splits into {len(parts)} parts; at most {_MAX_SEGMENTS} are processed per request",
                param="messages",
            )
        self.metrics.method("split", "request")
        return [[*messages[:-1], {**last, "content": part}] for part in parts]

    def _check_context(self, prepared: Prepared) -> None:
        """A 400 with the counts when the prompt (and the asked completion) exceed the window."""
        window = prepared.resolved.model.context_window
        if window is None:
            return
        requested = prepared.explicit or 0
        for messages in prepared.segments:
            prompt = self.template.per_request + sum(
                self.template.per_message + tokens.count(str(m.get("content") or "")) for m in messages
            )
            if prompt + requested > window:
                self.metrics.method("context", "refused")
                detail = (
                    f"your messages resulted in {prompt} tokens"
                    if not requested
                    else f"you requested {prompt + requested} tokens ({prompt} in the messages, "
                    f"{requested} in the completion)"
                )
                raise BadRequest(
                    f"This model's maximum context length is {window} tokens. However, {detail}. "
                    "Please reduce the length of the messages or completion.",
                    param="messages",
                    code="context_length_exceeded",
                )

    async def _admit(self, prepared: Prepared) -> None:
        """Budgets: 429 when the total or the key's is spent; the fallback model when the model's is."""
        headers, model_spent = await self.budgets.admit(prepared.key, prepared.called.name)
        prepared.headers.update(headers)
        if model_spent:
            fallback = self._fallback_model(prepared.called)
            if fallback is None:
                self.metrics.method("budget", "refused_model")
                raise QuotaExceeded(
                    f"the daily neuron budget of `{prepared.called.name}` is spent; it resets at 00:00 UTC"
                )
            self._use_fallback(prepared, fallback, "budget")

    def _fallback_model(self, model: Model) -> Model | None:
        fallbacks = self.settings.fallback_models
        name = fallbacks.get(model.name, fallbacks.get("*"))
        if name is None or name == model.name:
            return None
        return self.router.lookup(name)

    def _use_fallback(self, prepared: Prepared, model: Model, cause: str) -> None:
        self.metrics.method("fallback", cause)
        prepared.headers[FALLBACK_HEADER] = model.name
        prepared.model = model

    async def _cached(self, prepared: Prepared) -> Outcome | None:
        """The cached answer of a deterministic request (`x-cache` says whether there was one)."""
        if prepared.cache_key is None or prepared.cache is None:
            return None
        entry = await self.cache.get(prepared.cache_key) if prepared.cache.lookup else None
        if entry is None:
            self.metrics.method("cache", "miss")
            prepared.headers[CACHE_HEADER] = "MISS"
            return None
        self.metrics.method("cache", "hit")
        prepared.headers[CACHE_HEADER] = "HIT"
        outcome = Outcome(entry["text"], entry["tool_calls"], entry["usage"], entry["finish"])
        self.metrics.saved(prepared.called, outcome.usage["prompt_tokens"], outcome.usage["completion_tokens"])
        return outcome

    async def _finished(self, prepared: Prepared, outcome: Outcome) -> None:
        usage = outcome.usage
        model = prepared.called
        self.metrics.usage(model, usage["prompt_tokens"], usage["completion_tokens"])
        await self.budgets.spend(prepared.key, model, usage["prompt_tokens"], usage["completion_tokens"])
        if prepared.cache_key is not None and prepared.cache is not None and prepared.cache.store:
            entry = {"text": outcome.text, "tool_calls": outcome.tool_calls, "usage": usage, "finish": outcome.finish}
            await self.cache.put(prepared.cache_key, entry)

    # -- the parts of an answer --------------------------------------------------------------

    def _ask(self, prepared: Prepared, produced: int) -> int | None:
        """max_tokens for the next upstream call of a part that has `produced` tokens so far."""
        part_cap = self.settings.continuation_part_tokens if prepared.continuing else 0
        if not prepared.continuing:
            return prepared.explicit
        remaining = prepared.limit - produced
        if part_cap:
            return min(remaining, part_cap)
        if prepared.explicit is not None:
            return remaining
        # Continued without a client limit: the upstream's default per call (less at the end).
        default = prepared.called.default_max_tokens or 256
        return remaining if remaining < default else None

    def _body(self, prepared: Prepared, messages: list[dict[str, Any]], so_far: str, produced: int) -> dict[str, Any]:
        body = {**prepared.body}
        body["messages"] = (
            [*messages, {"role": "assistant", "content": so_far}, {"role": "user", "content": CONTINUE}]
            if so_far
            else messages
        )
        ask = self._ask(prepared, produced)
        if ask is None:
            body.pop("max_tokens", None)
        else:
            body["max_tokens"] = ask
        return body

    def _part_limit(self, prepared: Prepared, body: dict[str, Any]) -> int:
        ask = body.get("max_tokens")
        return int(ask) if ask is not None else (prepared.called.default_max_tokens or 256)

    def _record(
        self, prepared: Prepared, parts: _Parts, body: dict[str, Any], text: str, usage: Any, finish: str | None
    ) -> bool:
        """Count one upstream call's answer; whether it was cut at its token limit."""
        counted = _usage(usage, body, text)
        parts.prompt += counted["prompt_tokens"]
        parts.completion += counted["completion_tokens"]
        parts.so_far += text
        parts.produced += counted["completion_tokens"]
        parts.made += 1
        return finish == "length" or counted["completion_tokens"] >= self._part_limit(prepared, body)

    def _next_body(self, prepared: Prepared, parts: _Parts, cut: bool) -> dict[str, Any] | None:
        """The next upstream call: the current segment continued, or the next segment; None when
        the answer is complete."""
        if self._goes_on(prepared, cut, parts.made, parts.produced):
            return self._body(prepared, prepared.segments[parts.segment], parts.so_far, parts.produced)
        parts.cut = parts.cut or cut
        parts.answers.append(parts.so_far)
        parts.segment += 1
        parts.so_far, parts.produced, parts.made = "", 0, 0
        if parts.done:
            return None
        return self._body(prepared, prepared.segments[parts.segment], "", 0)

    def _goes_on(self, prepared: Prepared, cut: bool, calls: int, produced: int) -> bool:
        """Whether a cut part is continued."""
        if not (cut and prepared.continuing):
            return False
        if produced >= prepared.limit:
            return False
        if calls >= self.settings.continuation_max_calls:
            self.metrics.method("continuation", "max_calls")
            return False
        self.metrics.method("continuation", "part")
        return True

    async def _call(self, prepared: Prepared, call: Callable[[str], Awaitable[T]]) -> T:
        """`call(model name)` upstream; on capacity errors that outlast the retries, the fallback
        model (when one is set). Upstream failures become the client-facing errors."""
        started = time.perf_counter()
        name = prepared.called.name
        try:
            try:
                return await call(name)
            except CloudflareError as exc:
                fallback = self._fallback_model(prepared.called) if exc.code == CAPACITY_CODE else None
                if fallback is None:
                    raise
                self._use_fallback(prepared, fallback, "capacity")
                return await call(fallback.name)
        except UpstreamFailure as exc:
            raise from_upstream(exc, prepared.resolved.requested) from None
        finally:
            self.metrics.upstream(name, time.perf_counter() - started)

    async def _run(self, prepared: Prepared, body: dict[str, Any]) -> dict[str, Any]:
        async def run(name: str) -> dict[str, Any]:
            result = await self.upstream.run(name, body)
            if not isinstance(result, dict):  # never an empty answer passed off as a real one
                raise UpstreamFailure(f"Workers AI answered without a result ({type(result).__name__})")
            return result

        return await self._call(prepared, run)

    async def _open(
        self, prepared: Prepared, body: dict[str, Any]
    ) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
        async def opened(name: str) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
            events = await self.upstream.stream(name, body)
            return events, await anext(events, None)

        return await self._call(prepared, opened)

    # -- plain -------------------------------------------------------------------------------

    async def _outcome(self, prepared: Prepared, cached: Outcome | None = None) -> Outcome:
        """Run a completion upstream (in parts, when continued or split), not streamed."""
        if cached is not None:
            return cached
        parts = _Parts(len(prepared.segments))
        calls: list[dict[str, Any]] = []
        body: dict[str, Any] | None = self._body(prepared, prepared.segments[0], "", 0)
        while body is not None:
            text, new_calls, usage, finish = _normalise(await self._run(prepared, body))
            calls.extend(new_calls)
            cut = self._record(prepared, parts, body, text, usage, finish)
            if calls or _cut_at_stop(parts.text(), prepared.stops)[1]:
                break
            body = self._next_body(prepared, parts, cut)
        text, stopped = _cut_at_stop(parts.text(), prepared.stops)
        done = Outcome(text, calls, parts.usage(), _finish(calls, stopped, parts.cut))
        await self._finished(prepared, done)
        return done

    def _completion(self, prepared: Prepared, done: Outcome) -> dict[str, Any]:
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

    async def _stream_items(
        self, prepared: Prepared, cached: Outcome | None = None
    ) -> AsyncGenerator[str | None | Outcome]:
        """A streamed completion as text pieces, None for each keep-alive interval without
        news, and the `Outcome` last. Upstream errors before the first event raise here; later
        ones (a continuation or part that fails included) raise a GatewayError from the iteration."""
        if cached is not None:
            return _replay(cached)
        body = self._body(prepared, prepared.segments[0], "", 0)
        events, first = await self._open(prepared, body)
        return self._items(prepared, body, events, first)

    async def _items(
        self,
        prepared: Prepared,
        body: dict[str, Any],
        events: AsyncGenerator[dict[str, Any]],
        first: dict[str, Any] | None,
    ) -> AsyncGenerator[str | None | Outcome]:
        emitted: list[str] = []
        calls: list[dict[str, Any]] = []
        parts = _Parts(len(prepared.segments))
        hold = max((len(s) for s in prepared.stops), default=1) - 1
        pending = ""
        stopped = False
        while True:
            usage: dict[str, Any] | None = None
            upstream_finish: str | None = None
            part: list[str] = []
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
                    part.append(piece)
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
            cut = self._record(prepared, parts, body, "".join(part), usage, upstream_finish)
            if stopped or calls:
                break
            following = self._next_body(prepared, parts, cut)
            if following is None:
                break
            if parts.made == 0:  # a new segment: its answer follows a blank line
                pending += "\n\n"
            body = following
            events, first = await self._open(prepared, body)
        if pending:
            emitted.append(pending)
            yield pending
        done = Outcome("".join(emitted), calls, parts.usage(), _finish(calls, stopped, parts.cut))
        await self._finished(prepared, done)
        yield done

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


async def _replay(cached: Outcome) -> AsyncGenerator[str | None | Outcome]:
    """A cached answer as a stream: its text in pieces of a few tokens, then the outcome."""
    pieces = tokens.split(cached.text)
    for i in range(0, len(pieces), 8):
        yield "".join(pieces[i : i + 8])
    yield cached


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


def _usage(upstream: dict[str, Any] | None, body: dict[str, Any], text: str) -> dict[str, Any]:
    """The usage of one upstream call (estimated with the shared tokenizer when it gave none)."""
    if upstream and isinstance(upstream.get("completion_tokens"), int):
        prompt = int(upstream.get("prompt_tokens") or 0)
        completion = int(upstream["completion_tokens"])
    else:
        prompt = sum(tokens.count(str(m.get("content") or "")) for m in body["messages"])
        completion = tokens.count(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(calls: list[dict[str, Any]], stopped: bool, cut: bool) -> str:
    """ "tool_calls", "stop" at a stop sequence or a natural end, "length" when the answer was
    cut at a token limit (never a silent "stop")."""
    if calls:
        return "tool_calls"
    if stopped:
        return "stop"
    return "length" if cut else "stop"
