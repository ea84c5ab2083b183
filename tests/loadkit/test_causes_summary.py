"""Failure causes by code and message, and the mergeable summary."""

from __future__ import annotations

import pytest

from workerprobe.loadkit.causes import classify
from workerprobe.loadkit.summary import Collector
from workerprobe.loadkit.timing import Sample


@pytest.mark.parametrize(
    ("status", "body", "cause"),
    [
        (
            429,
            {"error": {"message": "x", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}},
            "daily_quota",
        ),
        (
            429,
            {"errors": [{"code": 4006, "message": "AiError: you have used up your daily free allocation"}]},
            "daily_quota",
        ),
        (429, {"errors": [{"code": 3036, "message": "..."}]}, "daily_quota"),
        (
            429,
            {
                "error": {
                    "message": "Workers AI: AiError: AiError: rate limiting: inference request per min rate reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            "rate_limit",
        ),
        (429, {"errors": [{"code": 3040, "message": "Capacity temporarily exceeded, please try again."}]}, "capacity"),
        (429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}, "gateway_429"),
        (502, {"error": {"message": "upstream"}}, "upstream_5xx"),
        (504, None, "upstream_5xx"),
        (500, "Internal Server Error", "gateway_5xx"),
        (400, {"error": {"message": "bad"}}, "client_error"),
    ],
)
def test_classify(status: int, body: object, cause: str) -> None:
    assert classify(status, body) == cause


def test_summary_merges_and_counts_truncation() -> None:
    a, b = Collector(), Collector()
    a.add(Sample(e2e=1.0, ttft=0.2, gaps=[0.1], output_tokens=64, finish_reason="length"), "m", 64, 4, 0.5)
    a.add(Sample(e2e=0.5, ttft=0.1, gaps=[0.1], output_tokens=64, finish_reason="stop"), "m", 64, 4, 0.5)
    b.add(Sample(e2e=0.3, ttft=0.1, output_tokens=10, finish_reason="stop"), "m", None, 8, 0.1)
    b.fail("capacity")
    a.merge(b.part())
    summary = a.summary()
    assert summary["requests"] == 4
    assert summary["failures"] == {"capacity": 1}
    assert summary["error_rate"] == pytest.approx(0.25)
    assert summary["truncation"]["m|64"] == {
        "answers": 2,
        "length": 1,
        "silent": 1,
        "length_rate": 0.5,
        "silent_rate": 0.5,
    }
    assert summary["truncation_rate"] == pytest.approx(2 / 3)
    assert summary["ttft_s"]["n"] == 3 and summary["itl_s"]["n"] == 2
    assert summary["neurons"] == pytest.approx(1.1)


def test_the_generator_is_the_bottleneck_past_90_percent_cpu_or_10_ms_late() -> None:
    from workerprobe.loadkit.summary import generator_health

    kept_up = generator_health(5.0, 10.0, 1, [0.001] * 20, 5.0, 50)
    assert kept_up["bottleneck"] is None and kept_up["cpu_share"] == 0.5 and kept_up["achieved_rps"] == 5.0
    assert kept_up["schedule_delay_s"]["n"] == 20
    busy = generator_health(19.0, 10.0, 2, [], None, 400)
    assert "95%" in busy["bottleneck"] and busy["requested_rps"] is None and busy["achieved_rps"] is None
    late = generator_health(1.0, 10.0, 1, [0.030] * 10, 5.0, 40)
    assert "30.0 ms late" in late["bottleneck"]
