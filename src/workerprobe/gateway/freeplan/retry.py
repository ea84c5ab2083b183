"""Retries of transient upstream failures, around the Workers AI client.

Retried: 3040 (capacity), 3021 (per-minute limit), other upstream 5xx, and no answer at all
(connection refused or reset, timeout). Never retried: the daily allocation (4006/3036, not
transient until 00:00 UTC), the upstream's own timeout (3046: the same request would time out
again), and every other 4xx. A stream is retried only until its first event: after that the
client has bytes, and a retry would repeat them.

The wait before each retry is full-jitter exponential backoff (`retry_base_s` doubling up to
`retry_max_s`), never shorter than the upstream's Retry-After; no retry is made whose wait would
end past `retry_deadline_s` from the first call. A retry budget bounds the extra load: each first
call deposits `retry_budget` tokens (with a small reserve), each retry takes one, so retries add
at most that share to the calls made however badly the upstream is doing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from workerprobe.cloudflare import WorkersAI
from workerprobe.cloudflare.errors import (
    CloudflareError,
    StreamBroken,
    UpstreamFailure,
    UpstreamUnavailable,
)
from workerprobe.gateway.metrics import Metrics
from workerprobe.settings import GatewaySettings

__all__ = ["Resilient", "RetryBudget", "transient_cause"]

T = TypeVar("T")


def transient_cause(exc: BaseException) -> str | None:
    """Why a failure is worth retrying ("capacity", "rate_limit", "upstream_5xx", "connection"), or None."""
    if isinstance(exc, CloudflareError):
        if exc.daily_quota or exc.timed_out:
            return None
        if exc.capacity:
            return "capacity"
        if exc.rate_limited:
            return "rate_limit"
        if exc.status >= 500:
            return "upstream_5xx"
        return None
    if isinstance(exc, (UpstreamUnavailable, StreamBroken)):
        return "connection"
    return None


class RetryBudget:
    """Retries may add at most `ratio` to the calls made (plus a reserve of `reserve` retries)."""

    def __init__(self, ratio: float, reserve: float = 10.0) -> None:
        self.ratio = ratio
        self.cap = reserve + 100 * ratio
        self.balance = reserve

    def deposit(self) -> None:
        self.balance = min(self.balance + self.ratio, self.cap)

    def withdraw(self) -> bool:
        if self.balance < 1:
            return False
        self.balance -= 1
        return True


class _StopWhenBudgetSpent(stop_base):
    """Last in the stop chain, so consulted only when a retry would otherwise be made."""

    def __init__(self, budget: RetryBudget, metrics: Metrics) -> None:
        self.budget = budget
        self.metrics = metrics

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.budget.withdraw():
            return False
        self.metrics.method("retry", "budget_exhausted")
        return True


class Resilient:
    """The Workers AI client's `run` and `stream`, with retries (off when `retry_attempts` is 0)."""

    def __init__(self, upstream: WorkersAI, settings: GatewaySettings, metrics: Metrics) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self.attempts = settings.retry_attempts + 1
        self.deadline_s = settings.retry_deadline_s
        self.budget = RetryBudget(settings.retry_budget)
        self._budget_stop = _StopWhenBudgetSpent(self.budget, metrics)
        self._backoff = wait_random_exponential(multiplier=settings.retry_base_s, max=settings.retry_max_s)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        upstream_says = getattr(exc, "retry_after", None) or 0.0
        return max(float(self._backoff(state)), upstream_says)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self.metrics.method("retry", (transient_cause(exc) if exc is not None else None) or "unknown")

    async def _call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        self.budget.deposit()
        if self.attempts == 1:
            return await attempt()
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: transient_cause(exc) is not None),
            wait=self._wait,
            stop=stop_any(stop_after_attempt(self.attempts), stop_before_delay(self.deadline_s), self._budget_stop),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            result: T = await retrying(attempt)
        except UpstreamFailure as exc:
            # The gateway has retried (or chose not to): a client retrying would multiply the calls.
            exc.retried = True
            raise
        return result

    async def run(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        # A coroutine function, not a lambda returning a coroutine: tenacity awaits only the former.
        async def attempt() -> Any:
            return await self.upstream.run(model, body, headers)

        return await self._call(attempt)

    async def responses(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        async def attempt() -> dict[str, Any]:
            return await self.upstream.responses(body, headers)

        return await self._call(attempt)

    async def open(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
        """A stream and its first event (taken here, once): the opening and the first event are
        retried, nothing after."""

        async def opened() -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
            events = await self.upstream.stream(model, body, headers)
            try:
                return events, await anext(events, None)
            except BaseException:
                await events.aclose()
                raise

        return await self._call(opened)
