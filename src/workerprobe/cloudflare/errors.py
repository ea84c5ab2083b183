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


class UpstreamFailure(Exception):
    pass


class CloudflareError(UpstreamFailure):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"{status} / {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after: float | None = None  # the upstream's Retry-After, in seconds

    @property
    def daily_quota(self) -> bool:
        return self.code in DAILY_QUOTA_CODES or "daily free allocation" in self.message


class UpstreamUnavailable(UpstreamFailure):
    pass


class StreamBroken(UpstreamFailure):
    pass
