"""The gateway's own time in each answer: from the request's arrival to its response headers,
less the time it waited on Workers AI (every upstream call, retries and their back-off included).
For a stream, the headers leave with its first event, so this is the time the gateway added before
the first token. It goes out as `x-workerprobe-overhead-ms` and into the histogram
`workerprobe_gateway_overhead_seconds` (as LiteLLM's `x-litellm-overhead-duration-ms` and
TensorZero's total-minus-provider time).

The wait is kept in a context variable that the edge sets per request: calls made by the request's
own task, or by tasks it starts (which copy the context), add to it. Calls that overlap (the
batches of one embeddings request, sent together) count once: the wait is the time at least one
call was under way.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["HEADER", "Waited", "begin", "current", "end"]

HEADER = b"x-workerprobe-overhead-ms"


class Waited:
    __slots__ = ("_since", "_under_way", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._under_way = 0
        self._since = 0.0

    def enter(self, now: float) -> None:
        if self._under_way == 0:
            self._since = now
        self._under_way += 1

    def leave(self, now: float) -> None:
        self._under_way -= 1
        if self._under_way == 0:
            self.seconds += now - self._since


_WAITED: ContextVar[Waited | None] = ContextVar("workerprobe_upstream_waited", default=None)


def begin() -> tuple[Waited, Token[Waited | None]]:
    waited_ = Waited()
    return waited_, _WAITED.set(waited_)


def end(token: Token[Waited | None]) -> None:
    _WAITED.reset(token)


def current() -> Waited | None:
    """The wait of the request being served (None outside one): upstream calls `enter` and `leave` it."""
    return _WAITED.get()
