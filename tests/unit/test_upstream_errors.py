"""Workers AI errors as the OpenAI errors a client sees (gateway/errors.from_upstream)."""

from __future__ import annotations

import pytest

from workerprobe.cloudflare.errors import CloudflareError, UpstreamFailure
from workerprobe.gateway.errors import from_upstream

RETIRED = "AiError: 5028: This model was deprecated on 2026-05-30. Please use an alternative model"


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (410, 5028, RETIRED, (404, "model_not_found")),
        (402, 2021, "AiError: prepaid credits exhausted", (429, "insufficient_quota")),
        (503, 7013, "AiError: guardrails service failure", (503, "service_unavailable")),
        (424, 2016, "AiError: blocked", (400, "content_filter")),
        (422, 2017, "AiError: blocked", (400, "content_filter")),
        (401, 2009, "AiError: provider credentials rejected", (502, "upstream_error")),
    ],
)
def test_late_2026_errors(status: int, code: int, message: str, expected: tuple[int, str]) -> None:
    error = from_upstream(CloudflareError(status, code, message), "@cf/meta/llama-3-8b-instruct")
    assert (error.status, error.code) == expected


def test_retries_the_gateway_made_are_not_to_be_multiplied() -> None:
    failure = CloudflareError(429, 3040, "Capacity temporarily exceeded, please try again.")
    assert "x-should-retry" not in from_upstream(failure).headers
    failure.retried = True
    assert from_upstream(failure).headers["x-should-retry"] == "false"


def test_a_failed_connection_is_told_in_our_own_words() -> None:
    error = from_upstream(UpstreamFailure("Cannot connect to host 10.0.0.7:8788 ssl:default [Connection refused]"))
    assert error.status == 502 and "10.0.0.7" not in error.message and "Cannot connect" not in error.message
