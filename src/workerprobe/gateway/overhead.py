"""The gateway's own time in each answer: from the request's arrival to its response headers,
less the time it waited on Workers AI (every upstream call, retries and their back-off included).
For a stream, the headers leave with its first event, so this is the time the gateway added before
the first token. It goes out as `x-workerprobe-overhead-ms` and into the histogram
`workerprobe_gateway_overhead_seconds` (as LiteLLM's `x-litellm-overhead-duration-ms` and
TensorZero's total-minus-provider time).

The wait is kept in a context variable that the edge sets per request: calls made by the request's
own task, or by tasks it starts (which copy the context), add to it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["HEADER", "Waited", "begin", "end", "waited"]

HEADER = b"x-workerprobe-overhead-ms"


class Waited:
    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


_WAITED: ContextVar[Waited | None] = ContextVar("workerprobe_upstream_waited", default=None)


def begin() -> tuple[Waited, Token[Waited | None]]:
    waited_ = Waited()
    return waited_, _WAITED.set(waited_)


def end(token: Token[Waited | None]) -> None:
    _WAITED.reset(token)


def waited(seconds: float) -> None:
    """The request waited this long on the upstream."""
    current = _WAITED.get()
    if current is not None:
        current.seconds += seconds
