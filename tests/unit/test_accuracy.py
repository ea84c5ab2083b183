"""The comparison of what the load generator measured with the server's own clock."""

from __future__ import annotations

import pytest

from workerprobe.loadkit.summary import accuracy


def test_errors_are_measured_against_the_servers_clock_request_by_request() -> None:
    # Sent at 10.0; the server got it at 10.001 and sent tokens at 10.201, 10.221, 10.241; the
    # client saw them at 10.203, 10.224, 10.243.
    timelines = [("a", 10.0, [10.203, 10.224, 10.243]), ("b", 20.0, [20.3, 20.4]), ("gone", 1.0, [1.2])]
    traces = {
        "a": {"arrived": 10.001, "started": 10.002, "tokens": [10.201, 10.221, 10.241]},
        "b": {"arrived": 20.0, "started": 20.0, "tokens": [20.25, 20.3, 20.35]},  # 3 tokens, 2 chunks
    }
    result = accuracy(timelines, traces)
    assert result["requests"] == 3 and result["unmatched"] == 2  # "b" does not pair, "gone" has no trace
    assert result["ttft"]["n"] == 2
    # a: client 0.203 against server 0.200; b: 0.3 against 0.25
    assert result["ttft"]["error_p50"] == pytest.approx((0.003 + 0.05) / 2)
    assert result["itl"]["n"] == 2  # a's two gaps: 0.021 against 0.020, 0.019 against 0.020
    assert result["itl"]["error_p50"] == pytest.approx(0.001)
    assert result["tpot"]["error_p50"] == pytest.approx(0.0)


def test_no_timelines_give_no_figures() -> None:
    assert accuracy([], {}) == {"ttft": None, "tpot": None, "itl": None, "requests": 0, "unmatched": 0}
