"""The answer loop: one chat completion from one or more upstream calls (continuation of an
answer cut at its limit, part by part, stop sequences held across chunks), plain or as a stream
of pieces. It knows nothing of metrics, cache or budgets: events it meets go to `notify`, and the
service settles the outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from workerprobe import tokens
from workerprobe.catalogue import Model
from workerprobe.cloudflare.wire import release_memory
from workerprobe.gateway.chat.plan import Outcome, Prepared
from workerprobe.gateway.chat.translate import counted_usage, cut_at_stop, event_parts, finish_reason, normalise
from workerprobe.gateway.errors import BadGateway
from workerprobe.gateway.upstream import Answered, Call, Opened
from workerprobe.settings import GatewaySettings

__all__ = ["AnswerLoop", "Upstream"]

CONTINUE = "Continue exactly where you stopped, without repeating anything."


class Upstream(Protocol):
    """What the loop calls (gateway/upstream.py): one upstream call, whole or as events (the first
    one already taken), its failures already the client-facing errors."""

    async def run(self, call: Call) -> Answered: ...

    async def open(self, call: Call) -> Opened: ...


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


class AnswerLoop:
    def __init__(self, upstream: Upstream, settings: GatewaySettings, notify: Callable[[str, str], None]) -> None:
        self.upstream = upstream
        self.settings = settings
        self.notify = notify

    def first_call(self, prepared: Prepared) -> Call:
        return prepared.call(prepared.model, self._body(prepared, prepared.model, prepared.segments[0], "", 0))

    def _ask(self, prepared: Prepared, model: Model, produced: int) -> int | None:
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
        default = model.max_tokens_applied
        return remaining if remaining < default else None

    def _body(
        self, prepared: Prepared, model: Model, messages: list[dict[str, Any]], so_far: str, produced: int
    ) -> dict[str, Any]:
        body = {**prepared.body}
        body["messages"] = (
            [*messages, {"role": "assistant", "content": so_far}, {"role": "user", "content": CONTINUE}]
            if so_far
            else messages
        )
        ask = self._ask(prepared, model, produced)
        if ask is None:
            body.pop("max_tokens", None)
        else:
            body["max_tokens"] = ask
        return body

    def _record(
        self, body: dict[str, Any], model: Model, parts: _Parts, text: str, usage: Any, finish: str | None
    ) -> bool:
        """Count one upstream call's answer; whether it was cut at its token limit."""
        counted = counted_usage(usage, body, text)
        parts.prompt += counted["prompt_tokens"]
        parts.completion += counted["completion_tokens"]
        parts.so_far += text
        parts.produced += counted["completion_tokens"]
        parts.made += 1
        ask = body.get("max_tokens")
        limit = int(ask) if ask is not None else model.max_tokens_applied
        return finish == "length" or counted["completion_tokens"] >= limit

    def _next_call(self, prepared: Prepared, model: Model, parts: _Parts, cut: bool) -> Call | None:
        """The next upstream call (to the model that answered the last one): the current segment
        continued, or the next segment; None when the answer is complete."""
        if self._goes_on(prepared, cut, parts.made, parts.produced):
            segment = prepared.segments[parts.segment]
            return prepared.call(model, self._body(prepared, model, segment, parts.so_far, parts.produced))
        parts.cut = parts.cut or cut
        parts.answers.append(parts.so_far)
        parts.segment += 1
        parts.so_far, parts.produced, parts.made = "", 0, 0
        if parts.done:
            return None
        return prepared.call(model, self._body(prepared, model, prepared.segments[parts.segment], "", 0))

    def _goes_on(self, prepared: Prepared, cut: bool, calls: int, produced: int) -> bool:
        """Whether a cut part is continued."""
        if not (cut and prepared.continuing):
            return False
        if produced >= prepared.limit:
            return False
        if calls >= self.settings.continuation_max_calls:
            self.notify("continuation", "max_calls")
            return False
        self.notify("continuation", "part")
        return True

    async def whole(self, prepared: Prepared) -> Outcome:
        """A completion upstream (in parts, when continued or split), not streamed."""
        parts = _Parts(len(prepared.segments))
        calls: list[dict[str, Any]] = []
        call: Call | None = self.first_call(prepared)
        model = prepared.model
        while call is not None:
            answered = await self.upstream.run(call)
            model = answered.model
            text, new_calls, usage, finish = normalise(answered.result)
            calls.extend(new_calls)
            cut = self._record(call.body, model, parts, text, usage, finish)
            if calls or cut_at_stop(parts.text(), prepared.stops)[1]:
                break
            call = self._next_call(prepared, model, parts, cut)
        text, stopped = cut_at_stop(parts.text(), prepared.stops)
        return _outcome(text, calls, parts, stopped, model)

    async def pieces(self, prepared: Prepared, call: Call, opened: Opened) -> AsyncGenerator[str | None | Outcome]:
        """The pieces of a streamed answer whose first call `opened`."""
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
            events, model = opened.events, opened.model
            relayed = self.with_keepalive(events, opened.first)
            most = _most_events(call)
            seen = 0
            try:
                async for item in relayed:
                    if item is None:
                        yield None
                        continue
                    seen += 1
                    if seen > most:
                        release_memory()
                        raise BadGateway(
                            f"Workers AI sent more than {most} events for the "
                            f"{call.body.get('max_tokens') or call.model.max_tokens_applied} tokens asked for."
                        )
                    piece, new_calls, event_usage, finish = event_parts(item)
                    calls.extend(new_calls)
                    usage = event_usage or usage
                    upstream_finish = finish or upstream_finish
                    if not piece:
                        continue
                    part.append(piece)
                    pending += piece
                    if prepared.stops:
                        text, stopped = cut_at_stop(pending, prepared.stops)
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
            finally:
                await relayed.aclose()
                await events.aclose()
            cut = self._record(call.body, model, parts, "".join(part), usage, upstream_finish)
            if stopped or calls:
                break
            following = self._next_call(prepared, model, parts, cut)
            if following is None:
                break
            if parts.made == 0:  # a new segment: its answer follows a blank line
                pending += "\n\n"
            call = following
            opened = await self.upstream.open(call)
        if pending:
            emitted.append(pending)
            yield pending
        yield _outcome("".join(emitted), calls, parts, stopped, model)

    async def with_keepalive(
        self, events: AsyncIterator[dict[str, Any]], first: dict[str, Any] | None
    ) -> AsyncGenerator[dict[str, Any] | None]:
        """Upstream events, with None whenever `keepalive_s` passes without one. Closed while it
        waits (the client left during a keep-alive), the wait for the next event is cancelled, so
        that the upstream stream is closed at once, not at its next event."""
        if first is None:
            return
        yield first
        step: asyncio.Future[dict[str, Any] | None] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(events, None))
                while True:
                    done, _ = await asyncio.wait({step}, timeout=self.settings.keepalive_s)
                    if done:
                        break
                    yield None
                item = step.result()
                step = None
                if item is None:
                    return
                yield item
        finally:
            if step is not None and not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # closing: what it raised is moot
                    await step


def _most_events(call: Call) -> int:
    """The most events one upstream stream may send: a token an event at most, with room for
    events that carry none (a role, usage, tool calls) and for models that split tokens."""
    asked = call.body.get("max_tokens") or call.model.max_tokens_applied
    return max(int(asked) * 8, 4096)


def _outcome(text: str, calls: list[dict[str, Any]], parts: _Parts, stopped: bool, model: Model) -> Outcome:
    """The outcome of an answer; cut at a stop sequence, its completion tokens are those returned
    (counted with the shared tokenizer), and what the upstream generated is kept as `spent`."""
    spent = parts.usage()
    finish = finish_reason(calls, stopped, parts.cut)
    if not stopped:
        return Outcome(text, calls, spent, finish, model=model)
    returned = min(tokens.count(text), spent["completion_tokens"])
    usage = {**spent, "completion_tokens": returned, "total_tokens": spent["prompt_tokens"] + returned}
    return Outcome(text, calls, usage, finish, spent, model)
