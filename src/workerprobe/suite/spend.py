"""What a scenario test's SDK clients did, seen exchange by exchange: each answer is booked under
the spec operation it hit (positive evidence for the matrix), what it created goes to the ledger,
and what it generated is charged to the run's budget from the usage it reports, where the spec
says it reports it. A stream is watched as the SDK reads it: the last `usage` its events carry (a
chat chunk's, a run's on `thread.run.completed`, a response's on its terminal event) is charged; a
stream without one (or cut before it) at the worst case of its request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson

from workerprobe.suite import operations
from workerprobe.suite.budget import Budget, Hold
from workerprobe.suite.ledger import Ledger

__all__ = ["ScenarioSpend", "operation_for", "stream_usage"]

_TAIL = 256 * 1024  # of a stream's bytes kept to find its usage in (it comes near the end)


def stream_usage(
    data: bytes, keys: tuple[str, str | None] = ("prompt_tokens", "completion_tokens")
) -> tuple[int, int] | None:
    """(input, output) tokens of the last event in an event stream that carries a usage object: on
    the event (a chat chunk, a run) or on the response it carries (a streamed response's terminal
    event). `keys`: the usage's input and output fields (the operation's `x-workerprobe-usage`)."""
    found = None
    for line in data.split(b"\n"):
        if not line.startswith(b"data:") or b'"usage"' not in line:
            continue
        try:
            event = orjson.loads(line[5:].strip())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        usage = event.get("usage")
        if not isinstance(usage, dict) and isinstance(event.get("response"), dict):
            usage = event["response"].get("usage")
        if isinstance(usage, dict):
            first, second = (usage.get(k) if k else 0 for k in keys)
            if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (first, second)):
                assert isinstance(first, int) and isinstance(second, int)
                found = (first, second)
    return found


class _Watched:
    """A stream's bytes as the SDK reads them (an SDK stops at `[DONE]`), the tail kept."""

    def __init__(self) -> None:
        self.tail = b""

    def add(self, chunk: bytes) -> bytes:
        self.tail = (self.tail + chunk)[-_TAIL:]
        return chunk


class _SyncWatched(httpx.SyncByteStream):
    def __init__(self, inner: Any, watched: _Watched) -> None:
        self.inner, self.watched = inner, watched

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            yield self.watched.add(chunk)

    def close(self) -> None:
        self.inner.close()


class _AsyncWatched(httpx.AsyncByteStream):
    def __init__(self, inner: Any, watched: _Watched) -> None:
        self.inner, self.watched = inner, watched

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield self.watched.add(chunk)

    async def aclose(self) -> None:
        await self.inner.aclose()


def operation_for(method: str, url: str) -> str | None:
    """The spec operation a request hit (`/v1/threads/runs` is its own, not a thread id)."""
    found = operations.load().match(method, httpx.URL(url).path)
    return found.label if found is not None else None


class ScenarioSpend:
    def __init__(self, budget: Budget | None, model: str, ledger: Ledger | None) -> None:
        self.budget, self.model, self.ledger = budget, model, ledger
        self.neurons = 0.0
        self.worst_case = 0.0
        self._once: dict[str, float] = {}  # usage read again (a run at every poll): counted once per id
        self._streams: list[tuple[_Watched, float, str, tuple[str, str | None]]] = []  # +model, usage keys

    def seen(self, response: httpx.Response) -> None:
        from workerprobe.suite.contract import FINDINGS

        request = response.request
        op = operations.load().match(request.method, request.url.path)
        if op is not None:
            FINDINGS.seen_by_sdk(op.label, response.status_code)
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        body: Any = None
        if not streamed and "json" in response.headers.get("content-type", ""):
            try:
                body = orjson.loads(response.read())
            except (orjson.JSONDecodeError, httpx.HTTPError):
                body = None
        if op is None:
            return
        if self.ledger is not None and 200 <= response.status_code < 300:
            self.ledger.created(op, body)
        if self.budget is None or response.status_code >= 400:
            return
        used = op.usage.tokens(body) if op.usage is not None else None
        if used is not None and isinstance(body, dict):
            cost = self.budget.model(str(body.get("model") or self.model)).neurons(*used)
            assert op.usage is not None
            if op.usage.once_per is not None:
                self._once[str(body.get(op.usage.once_per))] = cost
            else:
                self.neurons += cost
        elif streamed and op.generates is not None:
            try:
                sent = orjson.loads(request.content or b"{}")
            except orjson.JSONDecodeError:
                sent = {}
            if isinstance(sent, dict):
                worst = self.budget.estimate(sent, self.model, op.generates)
                watched = _Watched()
                inner = response.stream
                wrap = _AsyncWatched if isinstance(inner, httpx.AsyncByteStream) else _SyncWatched
                response.stream = wrap(inner, watched)
                keys = (
                    (op.usage.input, op.usage.output)
                    if op.usage is not None
                    else ("prompt_tokens", "completion_tokens")
                )
                self._streams.append((watched, worst, str(sent.get("model") or self.model), keys))

    def _streamed(self) -> None:
        """Each stream at the usage it reported, read to its end; at its worst case otherwise."""
        assert self.budget is not None
        for watched, worst, model, keys in self._streams:
            used = stream_usage(watched.tail, keys)  # it comes last: a stream cut before it has none
            if used is not None:
                self.neurons += self.budget.model(model).neurons(*used)
            else:
                self.neurons += worst
                self.worst_case += worst
        self._streams = []

    def settle(self, hold: Hold) -> None:
        if self.budget is not None:
            self._streamed()
            total = self.neurons + sum(self._once.values())
            self.budget.charge(hold, total, worst_case=self.worst_case)
