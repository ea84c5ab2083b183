"""What can go wrong upstream.

UpstreamFailure
 ├── CloudflareError(status, code, message)   the API answered with an error envelope
 ├── UpstreamUnavailable                      no answer: connection refused, reset, timeout
 └── StreamBroken                             a stream ended without [DONE] or sent bad JSON
"""

from __future__ import annotations

__all__ = ["CloudflareError", "StreamBroken", "UpstreamFailure", "UpstreamUnavailable"]

# Error codes by meaning (the catalogue's error table holds their messages).
DAILY_QUOTA_CODES = frozenset({4006, 3036})
RATE_LIMIT_CODE = 3021
CAPACITY_CODE = 3040
TIMEOUT_CODES = frozenset({3046, 3007})
UNKNOWN_MODEL_CODE = 5007
RETIRED_MODEL_CODE = 5028  # 410 since 2026-05-30
BAD_CREDENTIALS_CODE = 10000
PROVIDER_CREDENTIALS_CODE = 2009  # changelog 2026-10-05
CREDITS_EXHAUSTED_CODE = 2021  # changelog 2026-09-17
GUARDRAILS_UNAVAILABLE_CODE = 7013  # changelog 2026-09-17
PROMPT_BLOCKED_CODE, RESPONSE_BLOCKED_CODE = 2016, 2017
# prompt / response blocked by a guardrail (2026-09-17)
BLOCKED_CODES = frozenset({PROMPT_BLOCKED_CODE, RESPONSE_BLOCKED_CODE})


class UpstreamFailure(Exception):
    retried = False  # set by a retrying layer that gave up: the caller should not retry again

    def __init__(self, message: str = "", *, deadline_passed: bool = False) -> None:
        super().__init__(message)
        self.deadline_passed = deadline_passed  # no complete answer within the call's deadline


class CloudflareError(UpstreamFailure):
    """`message`: the envelope's own (short, control characters out), or what the answer was when
    it had no envelope, never its text; `raw`: the start of what came, for the log only."""

    def __init__(self, status: int, code: int | None, message: str, raw: str = "") -> None:
        super().__init__(f"{status} / {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.raw = raw
        self.retry_after: float | None = None  # the upstream's Retry-After, in seconds

    # What an error means, by its code: the only place outside the catalogue that reads them.

    @property
    def daily_quota(self) -> bool:
        return self.code in DAILY_QUOTA_CODES or "daily free allocation" in self.message

    @property
    def capacity(self) -> bool:
        """Out of capacity for now (3040): retried, then answered by a fallback model."""
        return self.code == CAPACITY_CODE

    @property
    def rate_limited(self) -> bool:
        """The per-minute limit (3021)."""
        return self.code == RATE_LIMIT_CODE

    @property
    def timed_out(self) -> bool:
        """The upstream's own time limit: the same request would time out again."""
        return self.code in TIMEOUT_CODES or self.status == 408

    @property
    def unknown_model(self) -> bool:
        return self.code == UNKNOWN_MODEL_CODE

    @property
    def retired_model(self) -> bool:
        return self.code == RETIRED_MODEL_CODE or self.status == 410

    @property
    def credentials_refused(self) -> bool:
        return self.status == 401 or self.code in (BAD_CREDENTIALS_CODE, PROVIDER_CREDENTIALS_CODE)

    @property
    def credits_exhausted(self) -> bool:
        """Prepaid credits are spent: not transient, as the daily allocation."""
        return self.code == CREDITS_EXHAUSTED_CODE or self.status == 402

    @property
    def guardrails_unavailable(self) -> bool:
        return self.code == GUARDRAILS_UNAVAILABLE_CODE

    @property
    def blocked(self) -> bool:
        """A guardrail blocked the prompt or the response."""
        return self.code in BLOCKED_CODES

    @property
    def response_blocked(self) -> bool:
        """A guardrail blocked the model's response (the prompt passed)."""
        return self.code == RESPONSE_BLOCKED_CODE


class UpstreamUnavailable(UpstreamFailure):
    pass


class StreamBroken(UpstreamFailure):
    pass
