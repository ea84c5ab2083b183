"""Chat Completions over Workers AI: `ChatService.create` is the one way through, for the route
and for runs alike. It plans the request once (`Prepared`), looks in the cache, admits it to the
budgets, answers it with the answer loop (`answer.py`) over the upstream (retries, and the
fallback model here), and settles the outcome (metrics, budgets, cache).

The free-plan methods (each switchable, see settings and gateway/freeplan/):
- continuation: an answer the upstream cut at its token limit, below what the client asked for,
  is continued and the parts stitched into one answer, plain or streamed, usage summed, bounded
  in calls and tokens (answer.py);
- part by part (`x-workerprobe-split: paragraphs | tokens:N`): the last user message is cut into
  parts, each answered with the same instructions, the answers joined in order;
- a prompt over the model's context window is a 400 with the counts, before any upstream call;
- the response cache, budgets and fallback model (freeplan/).

`max_tokens` / `max_completion_tokens` are forwarded; when neither is set the model's default
(256 for the classic models) still applies upstream, so it is the limit truncation is judged by.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

from workerprobe import tokens
from workerprobe.catalogue import Model
from workerprobe.gateway.chat import render
from workerprobe.gateway.chat.answer import AnswerLoop
from workerprobe.gateway.chat.generation import Generation
from workerprobe.gateway.chat.plan import Answer, Outcome, Prepared, Served, Streamed
from workerprobe.gateway.chat.translate import SPLIT_HEADER, segments
from workerprobe.gateway.errors import BadRequest, QuotaExceeded, ResponseBlocked
from workerprobe.gateway.freeplan.budget import Budgets
from workerprobe.gateway.freeplan.cache import HEADER as CACHE_HEADER
from workerprobe.gateway.freeplan.cache import CacheDecision, ResponseCache
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter
from workerprobe.gateway.upstream import FALLBACK_HEADER, Fallback
from workerprobe.ids import unique_hex
from workerprobe.settings import GatewaySettings

__all__ = ["SPLIT_HEADER", "Answer", "ChatService", "Outcome", "Prepared", "Streamed", "segments"]

T = TypeVar("T")
_MAX_SEGMENTS = 64


class ChatService:
    """Chat completions: `create` is the one entry (the route and runs alike)."""

    def __init__(
        self,
        upstream: Fallback,
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
        self.budgets = budgets
        self.cache = cache
        self.template = router.catalogue.chat_template_tokens
        self.loop = AnswerLoop(self.upstream, settings, metrics.method)

    async def create(self, request: Generation) -> Answer | Streamed:
        """The one way through the chat core, for every family: an `Answer`, or a `Streamed` one
        when the request streams. Upstream errors before the first byte raise here; later ones end
        the stream with an error event."""
        prepared = self._prepare(request)
        headers = dict(prepared.resolved.headers())
        cached = await self._cached(prepared, headers)
        if cached is None:  # budgets: a cache hit costs nothing, so it is always served
            prepared = await self._admit(prepared, headers)
        try:
            if not request.stream:
                done = cached or await self.loop.whole(prepared)
                if cached is None:
                    await self._finished(prepared, done)
                return Answer(done, prepared, self._served(prepared, done.model, headers))
            if cached is not None:
                return Streamed(render.replay(cached), prepared, self._served(prepared, None, headers))
            call = self.loop.first_call(prepared)
            opened = await self.upstream.open(call)
        except ResponseBlocked:
            blocked = self._blocked(prepared)
            served = self._served(prepared, None, headers)
            if not request.stream:
                return Answer(blocked, prepared, served)
            return Streamed(render.replay(blocked), prepared, served)
        items = self._settled(prepared, self.loop.pieces(prepared, call, opened))
        return Streamed(items, prepared, self._served(prepared, opened.model, headers))

    def _served(self, prepared: Prepared, answered: Model | None, headers: dict[str, str]) -> Served:
        """The model that answered (the planned one when none did) and the answer's headers, which
        name a fallback model."""
        model = answered or prepared.model
        if model is not prepared.resolved.model:
            headers[FALLBACK_HEADER] = model.name
        return Served(model, headers)

    def _blocked(self, prepared: Prepared) -> Outcome:
        """A guardrail blocked the model's response (2017): an answer with no text and
        `finish_reason: "content_filter"`, as OpenAI ends a filtered completion. A blocked prompt
        (2016) stays a 400 `content_filter`."""
        self.metrics.method("guardrail", "response_blocked")
        prompt = self._prompt_tokens(prepared.segments[0])
        return Outcome(
            "", [], {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt}, "content_filter"
        )

    def render(self, answer: Answer) -> dict[str, Any]:
        """The JSON of a whole chat completion."""
        return render.completion(answer.prepared, answer.outcome)

    def render_stream(self, streamed: Streamed) -> AsyncIterator[bytes]:
        """The SSE bytes of a streamed chat completion."""
        return render.stream(
            streamed.prepared, streamed.items, lambda error: self.metrics.error(error.code or error.type)
        )

    async def _settled(
        self, prepared: Prepared, items: AsyncGenerator[str | None | Outcome]
    ) -> AsyncGenerator[str | None | Outcome]:
        try:
            async for item in items:
                if isinstance(item, Outcome):
                    await self._finished(prepared, item)
                yield item
        finally:
            await items.aclose()

    # -- the plan ----------------------------------------------------------------------------

    def _prepare(self, request: Generation) -> Prepared:
        resolved = self.router.resolve(request.model, "text-generation", "v1/chat/completions")
        model = resolved.model
        key = request.caller.key
        max_tokens = request.max_tokens
        if max_tokens is None:  # the configured deliberate default, if any, beats the upstream's
            max_tokens = self.default_max_tokens.get(model.name, self.default_max_tokens.get("*"))
        body, stops = request.upstream_body(max_tokens), list(request.stops)
        settings = self.settings
        plain_text = "tools" not in body and "response_format" not in body
        wanted = (
            "*" in settings.continuation_models
            or model.name in settings.continuation_models
            or (bool(key) and key in settings.continuation_keys)
        )
        continuing = plain_text and (wanted or settings.continuation_part_tokens > 0)
        upstream_default = model.max_tokens_applied
        if max_tokens is not None:
            limit = max_tokens
        elif continuing and wanted:
            limit = settings.continuation_max_tokens
        else:  # no client limit and continuation not wanted: one call, the upstream's default
            limit, continuing = upstream_default, False
        cache_key = self.cache.key(model.name, body, stops, scope=key)
        prepared = Prepared(
            resolved=resolved,
            body=body,
            limit=limit,
            stops=stops,
            include_usage=request.include_usage,
            model=model,
            key=key,
            explicit=max_tokens,
            continuing=continuing,
            segments=self._segments(body["messages"], request.caller.split),
            cache_key=cache_key,
            cache=CacheDecision(request.caller.cache_control) if cache_key is not None else None,
            request_id=request.caller.request_id,
            id=f"{request.id_prefix}{unique_hex()}",
        )
        self._check_context(prepared)
        return prepared

    def _segments(self, messages: list[dict[str, Any]], split: str | None) -> tuple[list[dict[str, Any]], ...]:
        if split is None:
            return (messages,)
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
        return tuple([*messages[:-1], {**last, "content": part}] for part in parts)

    def _prompt_tokens(self, messages: list[dict[str, Any]], measure: Callable[[str], int] = tokens.count) -> int:
        """The prompt's tokens with the chat template's, each message's text measured by `measure`."""
        return self.template.per_request + sum(
            self.template.per_message + measure(str(m.get("content") or "")) for m in messages
        )

    def _check_context(self, prepared: Prepared) -> None:
        """A 400 with the counts when the prompt (and the asked completion) exceed the window."""
        window = prepared.resolved.model.context_window
        if window is None:
            return
        requested = prepared.explicit or 0
        for messages in prepared.segments:
            # A token is at least one character: a prompt with fewer characters than the window
            # leaves needs no count.
            if self._prompt_tokens(messages, len) + requested <= window:
                continue
            prompt = self._prompt_tokens(messages)
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

    async def _admit(self, prepared: Prepared, headers: dict[str, str]) -> Prepared:
        """Budgets (their headers go to `headers`): 429 when the total or the key's is spent; the
        request planned again for the fallback model when the model's is."""
        admitted, model_spent = await self.budgets.admit(prepared.key, prepared.model.name)
        headers.update(admitted)
        if not model_spent:
            return prepared
        fallback = self.upstream.model_for(prepared.model)
        if fallback is None:
            self.metrics.method("budget", "refused_model")
            raise QuotaExceeded(f"the daily neuron budget of `{prepared.model.name}` is spent; it resets at 00:00 UTC")
        self.metrics.method("fallback", "budget")
        return replace(prepared, model=fallback)

    async def _cached(self, prepared: Prepared, headers: dict[str, str]) -> Outcome | None:
        """The cached answer of a deterministic request (`x-cache` in `headers` says whether there
        was one)."""
        if prepared.cache_key is None or prepared.cache is None:
            return None
        entry = await self.cache.get(prepared.cache_key) if prepared.cache.lookup else None
        if entry is None:
            self.metrics.method("cache", "miss")
            headers[CACHE_HEADER] = "MISS"
            return None
        self.metrics.method("cache", "hit")
        headers[CACHE_HEADER] = "HIT"
        outcome = Outcome(entry["text"], entry["tool_calls"], entry["usage"], entry["finish"])
        self.metrics.saved(prepared.model, outcome.usage["prompt_tokens"], outcome.usage["completion_tokens"])
        return outcome

    async def _finished(self, prepared: Prepared, outcome: Outcome) -> None:
        usage = outcome.usage
        model = outcome.model or prepared.model
        spent = outcome.spent or usage  # budgets pay for what the upstream generated
        await self.budgets.settle(prepared.key, model, spent["prompt_tokens"], spent["completion_tokens"])
        if prepared.cache_key is not None and prepared.cache is not None and prepared.cache.store:
            entry = {"text": outcome.text, "tool_calls": outcome.tool_calls, "usage": usage, "finish": outcome.finish}
            await self.cache.put(prepared.cache_key, entry)
