"""The free-plan methods' own rules, without servers: which failures are retried, the retry
budget and deadline, how a text is cut into parts, and cache decisions."""

from __future__ import annotations

from typing import Any

import pytest

from workerprobe.cloudflare.errors import CloudflareError, StreamBroken, UpstreamUnavailable
from workerprobe.gateway.chat.service import segments
from workerprobe.gateway.errors import BadRequest
from workerprobe.gateway.freeplan.cache import CacheDecision, ResponseCache
from workerprobe.gateway.freeplan.retry import Resilient, RetryBudget, transient_cause
from workerprobe.gateway.metrics import Metrics
from workerprobe.settings import GatewaySettings


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (CloudflareError(429, 3040, "Capacity temporarily exceeded"), "capacity"),
        (CloudflareError(429, 3021, "Too many requests"), "rate_limit"),
        (CloudflareError(502, 7010, "Bad gateway"), "upstream_5xx"),
        (UpstreamUnavailable("refused"), "connection"),
        (StreamBroken("ended without [DONE]"), "connection"),
        (CloudflareError(429, 4006, "you have used up your daily free allocation"), None),
        (CloudflareError(429, 3036, "daily free allocation"), None),
        (CloudflareError(408, 3046, "Request timeout"), None),
        (CloudflareError(400, 5006, "Bad input"), None),
        (CloudflareError(404, 5007, "No such model"), None),
    ],
)
def test_which_failures_are_retried(error: Exception, cause: str | None) -> None:
    assert transient_cause(error) == cause


def test_retry_budget_bounds_retries_to_a_share_of_calls() -> None:
    budget = RetryBudget(0.2, reserve=2)
    assert budget.withdraw() and budget.withdraw()
    assert not budget.withdraw()  # the reserve is spent
    for _ in range(5):  # five calls earn one retry
        budget.deposit()
    assert budget.withdraw()
    assert not budget.withdraw()


class _Upstream:
    """Fails `failures` times with `error`, then answers."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    async def run(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"response": "ok"}


def _resilient(upstream: _Upstream, **settings: Any) -> tuple[Resilient, Metrics]:
    metrics = Metrics()
    chosen = GatewaySettings(retry_attempts=3, retry_base_s=0.001, retry_max_s=0.002, **settings)
    return Resilient(upstream, chosen, metrics), metrics  # type: ignore[arg-type]


async def test_retries_until_an_answer_and_counts_them_by_cause() -> None:
    upstream = _Upstream(CloudflareError(429, 3040, "busy"), failures=2)
    resilient, metrics = _resilient(upstream)
    assert await resilient.run("m", {}) == {"response": "ok"}
    assert upstream.calls == 3
    assert metrics.methods[("retry", "capacity")] == 2


async def test_gives_up_after_the_attempts_with_the_upstream_error() -> None:
    upstream = _Upstream(CloudflareError(429, 3040, "busy"), failures=10)
    resilient, _ = _resilient(upstream)
    with pytest.raises(CloudflareError):
        await resilient.run("m", {})
    assert upstream.calls == 4  # the first call and 3 retries


async def test_no_retry_whose_wait_would_end_past_the_deadline() -> None:
    error = CloudflareError(429, 3021, "limited")
    error.retry_after = 5.0  # the upstream asks for 5 s; the deadline is 0.5 s
    upstream = _Upstream(error, failures=1)
    resilient, metrics = _resilient(upstream, retry_deadline_s=0.5)
    with pytest.raises(CloudflareError):
        await resilient.run("m", {})
    # no second call and no wait begun (a wait is counted as a retry before it sleeps): no wall clock
    assert upstream.calls == 1 and not any(method == "retry" for method, _ in metrics.methods)


async def test_an_empty_retry_budget_stops_retries() -> None:
    upstream = _Upstream(CloudflareError(503, 7011, "unavailable"), failures=100)
    resilient, metrics = _resilient(upstream, retry_budget=0.0)
    resilient.budget.balance = 0.0
    with pytest.raises(CloudflareError):
        await resilient.run("m", {})
    assert upstream.calls == 1
    assert metrics.methods[("retry", "budget_exhausted")] == 1


def test_segments_by_paragraph_and_by_token_budget() -> None:
    text = "First part here.\n\nSecond part.\n \n\nThird one is a little longer than the others."
    assert segments(text, "paragraphs") == [
        "First part here.",
        "Second part.",
        "Third one is a little longer than the others.",
    ]
    packed = segments(text, "tokens:8")
    assert packed[0] == "First part here.\n\nSecond part."  # 4 + 3 tokens fit in 8
    assert all(len(part.split()) <= 8 for part in packed)
    assert " ".join(" ".join(packed).split()) == " ".join(text.split())  # nothing lost, in order
    with pytest.raises(BadRequest):
        segments(text, "tokens:0")
    with pytest.raises(BadRequest):
        segments(text, "sentences")


def test_cache_keys_only_for_deterministic_requests() -> None:
    cache = ResponseCache(store=None, ttl_s=60)  # type: ignore[arg-type]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert cache.key("m", body, []) is None
    greedy = cache.key("m", {**body, "temperature": 0}, [])
    assert greedy is not None and greedy == cache.key("m", {"temperature": 0, **body}, [])  # order-free
    assert greedy != cache.key("m", {**body, "temperature": 0}, ["\n"])  # the stops are part of it
    assert cache.key("m", {**body, "seed": 3, "temperature": 0.7}, []) is not None
    assert ResponseCache(store=None, ttl_s=0).key("m", {**body, "temperature": 0}, []) is None  # type: ignore[arg-type]
    assert (CacheDecision(None).lookup, CacheDecision(None).store) == (True, True)
    assert (CacheDecision("no-cache").lookup, CacheDecision("no-cache").store) == (False, True)
    assert (CacheDecision("No-Store").lookup, CacheDecision("No-Store").store) == (False, False)
