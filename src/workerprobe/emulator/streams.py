"""Sending a stream of events at the latency model's pace, with stream faults applied.

Token events are due at `ttft + i * tpot` from the start of the response (absolute deadlines, so
scheduling error never accumulates); other events follow the event before them at once.

With a `trace`, the stream records the server's own clock (`time.monotonic()`, the machine's
CLOCK_MONOTONIC, which every process on it shares): when the response started and when each token
event was handed to the server. Load runs compare what they measured against it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

__all__ = ["PacedStream", "StreamEvent"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    data: bytes
    token: bool  # paced as an output token


class PacedStream:
    """An ASGI response that sends `events` as `text/event-stream`."""

    def __init__(
        self,
        events: list[StreamEvent],
        ttft_s: float,
        tpot_s: float,
        fault: str | None = None,
        stall_s: float = 3.0,
        trace: dict[str, object] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.on_done = on_done  # called once the stream has ended, however it ended
        self.events = events
        self.ttft_s = ttft_s
        self.tpot_s = tpot_s
        self.fault = fault
        self.stall_s = stall_s
        self.trace = trace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = asyncio.Event()

        async def listen() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        listener = asyncio.create_task(listen())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            if self.trace is not None:
                self.trace["started"] = time.monotonic()
            complete = await self._body(send, disconnected)
            if complete:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # A cut stream returns without completing the response: the server drops the connection.
        finally:
            listener.cancel()
            if self.on_done is not None:
                self.on_done()

    async def _body(self, send: Send, disconnected: asyncio.Event) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tokens = sum(e.token for e in self.events)
        if self.fault == "buffered-stream":  # a proxy that holds the stream: all of it, at the end
            delay = start + self.ttft_s + max(tokens - 1, 0) * self.tpot_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": b"".join(e.data for e in self.events), "more_body": True})
            if self.trace is not None:
                self.trace["tokens"] = [time.monotonic()] * tokens
            return True
        middle = tokens // 2
        rng = random.Random(len(self.events))
        pending = b""
        index = 0
        for event in self.events:
            if disconnected.is_set():
                return False
            data = event.data
            if event.token:
                due = start + self.ttft_s + index * self.tpot_s
                if self.fault == "slow-stream" and index >= middle:
                    due += self.stall_s
                if index == middle:
                    if self.fault == "cut-stream":
                        return False
                    if self.fault == "malformed-event":
                        await send(
                            {"type": "http.response.body", "body": b'data: {"response":"\n\n', "more_body": True}
                        )
                index += 1
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.fault == "split-events":
                # Cut every event at a random point and send its tail with the next event's head,
                # so no read boundary falls between events (some fall inside a UTF-8 character).
                cut = rng.randint(1, max(len(data) - 1, 1))
                await send({"type": "http.response.body", "body": pending + data[:cut], "more_body": True})
                pending = data[cut:]
                await asyncio.sleep(0.001)
                continue
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if event.token and self.trace is not None:
                self.trace["tokens"].append(time.monotonic())  # type: ignore[attr-defined]
        if pending:
            await send({"type": "http.response.body", "body": pending, "more_body": True})
        return True
