"""The load profiles, run headless against the embedded target (real gateway, real emulator,
real Locust processes), bounded to a few seconds and users on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bad_flags_are_refused_before_anything_starts(tmp_path: Path) -> None:
    for flags, said in (
        (["--profile", "nosuch"], "invalid choice: 'nosuch'"),
        (["--users", "0"], "--users: must be at least 1"),
        (["--classes", "Nobody"], "invalid choice: 'Nobody'"),
        (["--fault-rates", "{3040: 0.1}"], "--fault-rates is not JSON"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "workerprobe", "load", "--out", str(tmp_path), *flags],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert result.returncode == 2 and said in result.stderr, (flags, result.stderr)
        assert "load target" not in result.stdout  # no server was started


def _run(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    result = subprocess.run(
        # --embedded: these tests load only the loopback gateway they start, whatever .env says.
        # --allow-busy-generator: on a busy machine the generator may not keep up; these tests judge
        # other things (the bottleneck check itself is tests/loadkit's).
        [
            sys.executable,
            str(ROOT / "load" / "run.py"),
            "--embedded",
            "--allow-busy-generator",
            "--out",
            str(tmp_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    summary_path = tmp_path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output  # users stopping, budgets, refusals: never a traceback
    return result.returncode, summary, output


def test_measured_ttft_tpot_and_itl_match_the_servers_own_clock(tmp_path: Path) -> None:
    """Emulator at TTFT 200 ms and 20 ms per token, 32 streaming users: what the profiles measured,
    request by request, against the emulator's trace of the same requests (its clock, not the
    nominal latency model, so a busy machine that slows the server cannot fail the test). The TTFT
    error includes the trip through the gateway both ways."""
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "StreamUser",
        "--users",
        "32",
        "--seconds",
        "12",
        "--emulator-latency",
        "zero",
        "--ttft-ms",
        "200",
        "--tpot-ms",
        "20",
        "--max-error-rate",  # a `buffered` stream is a failure of its own (see below), not a threshold here
        "1",
    )
    assert code == 0, output
    accuracy = summary["accuracy"]
    assert accuracy["unmatched"] == 0 and accuracy["ttft"]["n"] == accuracy["requests"] > 0, accuracy
    assert accuracy["ttft"]["error_p50"] < 0.050, accuracy
    assert accuracy["tpot"]["error_p50"] < 0.005, accuracy
    assert accuracy["itl"]["error_p50"] < 0.005, accuracy
    assert summary["estimated_token_counts"] == 0  # usage came with every stream
    # `buffered` is judged by the client's own clock (chunks that arrive together): on a busy machine
    # the generator reads late and may see a paced stream bunched. Its detection is tested against
    # servers that buffer and servers that pace (tests/loadkit/test_buffered.py); here every other
    # cause must be 0, and the figures above are judged by the server's clock.
    assert set(summary["failures"]) <= {"buffered"}, summary["failures"]
    # a shape CI can read: every cause (zeros too), throughput, when, what and with which version
    assert set(summary["causes"]) >= {"auth", "connection", "buffered", "capacity"} and not any(
        n for cause, n in summary["causes"].items() if cause != "buffered"
    )
    assert summary["throughput"]["requests_per_s"] > 0 and summary["throughput"]["output_tokens_per_s"] > 0
    assert summary["started_at"] < summary["ended_at"] and summary["target"] == "the embedded default"
    assert summary["version"] and summary["profile"] == "steady"
    assert summary["gateway_overhead_s"]["n"] == summary["requests"]  # every answer said its own time
    # progress while it ran (a line every 5 s), a table at the end, no traceback
    assert output.count(" req/s ") >= 2 and "TTFT         p50" in output, output
    for name in (
        "locust.html",
        "locust_stats.csv",
        "ttft.png",
        "tpot.png",
        "latency_vs_concurrency.png",
        "truncation_vs_max_tokens.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name


def test_truncation_is_measured_per_max_tokens(tmp_path: Path) -> None:
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ChatUser",
        "--users",
        "4",
        "--seconds",
        "4",
        "--emulator-latency",
        "zero",
    )
    assert code == 0, output
    truncation = summary["truncation"]
    long_answer = truncation["@cf/meta/llama-3.1-8b-instruct-fast|64"]
    assert long_answer["length_rate"] == 1.0 and long_answer["silent_rate"] == 0.0
    assert truncation["@cf/meta/llama-3.1-8b-instruct-fast|128"]["length_rate"] == 0.0


def test_responses_are_timed_at_their_first_delta_and_cut_ones_read_from_their_status(tmp_path: Path) -> None:
    """ResponsesUser: streamed responses timed at the first `response.output_text.delta` (checked
    against the emulator's own clock, as chat streams are), and truncation read from `status:
    incomplete`, plain and streamed."""
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ResponsesUser",
        "--users",
        "8",
        "--seconds",
        "6",
        "--emulator-latency",
        "zero",
        "--ttft-ms",
        "200",
        "--tpot-ms",
        "10",
        "--max-error-rate",
        "1",
    )
    assert code == 0, output
    assert set(summary["failures"]) <= {"buffered"}, summary["failures"]
    accuracy = summary["accuracy"]
    assert accuracy["unmatched"] == 0 and accuracy["ttft"]["n"] > 0, accuracy
    assert accuracy["ttft"]["error_p50"] < 0.050, accuracy
    assert summary["estimated_token_counts"] == 0  # usage came with every terminal event
    truncation = summary["truncation"]
    cut, whole = (
        truncation["@cf/meta/llama-3.1-8b-instruct-fast|64"],
        truncation["@cf/meta/llama-3.1-8b-instruct-fast|128"],
    )
    assert cut["length_rate"] == 1.0 and cut["silent_rate"] == 0.0, truncation
    assert whole["length_rate"] == 0.0, truncation


def test_thresholds_fail_the_run(tmp_path: Path) -> None:
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "StreamUser",
        "--users",
        "4",
        "--seconds",
        "4",
        "--emulator-latency",
        "zero",
        "--ttft-ms",
        "200",
        "--p95-ttft-ms",
        "100",
        "--max-truncation-rate",
        "0.1",
    )
    assert code == 1, output
    assert any("p95 TTFT" in b for b in summary["thresholds_breached"])
    assert any("truncation rate" in b for b in summary["thresholds_breached"])
    assert "THRESHOLD BREACHED" in output


def test_failures_are_classified_by_cause(tmp_path: Path) -> None:
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ChatUser",
        "--users",
        "4",
        "--seconds",
        "4",
        "--emulator-latency",
        "zero",
        "--fault-rates",
        '{"3040": 0.2, "500": 0.1}',
    )
    assert code == 1, output  # 30% failed: past the default --max-error-rate of 0.01
    assert any(b.startswith("error rate") for b in summary["thresholds_breached"]), summary
    assert set(summary["failures"]) == {"capacity", "upstream_5xx"}
    assert summary["failures"]["capacity"] > summary["failures"]["upstream_5xx"] > 0


def test_daily_allocation_stops_the_run_at_once(tmp_path: Path) -> None:
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ChatUser",
        "--users",
        "2",
        "--seconds",
        "30",
        "--emulator-latency",
        "zero",
        "--daily-neurons",
        "40",
    )
    assert code == 1, output
    assert summary["stop_reason"] == "daily allocation spent"
    assert summary["failures"].get("daily_quota", 0) >= 1
    assert "stopped early: daily allocation spent" in output


def test_neuron_budget_stops_before_the_cap(tmp_path: Path) -> None:
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ChatUser",
        "--users",
        "2",
        "--seconds",
        "30",
        "--emulator-latency",
        "zero",
        "--max-neurons",
        "60",
    )
    assert code == 0, output
    assert summary["stop_reason"].startswith("neuron budget")
    assert summary["neurons"] <= 60


def test_distributed_mode_aggregates_the_workers(tmp_path: Path) -> None:
    code, summary, output = _run(
        tmp_path,
        "--workers",
        "2",
        "--classes",
        "StreamUser",
        "--users",
        "8",
        "--seconds",
        "6",
        "--emulator-latency",
        "zero",
        "--ttft-ms",
        "100",
        "--tpot-ms",
        "10",
    )
    assert code == 0, output
    # Every request the emulator served was measured by one of the workers and reached the master.
    served = summary["upstream_requests_served"]
    assert served > 16 and summary["requests"] == served, output
    assert summary["ttft_s"]["n"] == served
    # The workers' timelines reached the master too: every request compared with the server's clock.
    accuracy = summary["accuracy"]
    assert accuracy["requests"] == served and accuracy["unmatched"] == 0, accuracy
    assert accuracy["ttft"]["error_p50"] < 0.050 and accuracy["itl"]["error_p50"] < 0.005, accuracy


def test_free_plan_profile_stays_under_the_per_minute_limit(tmp_path: Path) -> None:
    """Paced to 300 text-generation requests a minute in total, against the emulator with its
    free-plan limits on: the limit (3021) never fires."""
    code, summary, output = _run(
        tmp_path,
        "--profile",
        "free-plan",
        "--classes",
        "ChatUser",
        "--users",
        "10",
        "--seconds",
        "12",
        "--emulator-latency",
        "zero",
        "--free-plan",
        "--max-neurons",
        "5000",
    )
    assert code == 0, output
    assert "rate_limit" not in summary["failures"], summary["failures"]
    generator = summary["generator"]
    assert generator["requested_rps"] == 5.0 and generator["achieved_rps"] > 0
    assert generator["schedule_delay_s"]["n"] >= 30  # every paced request: how late it started
    # One schedule for all ten users (no burst as they start): never more than 5 a second over
    # the run as the generator clocked it, whatever the machine's speed. The emulator's own
    # per-minute limit not firing (above) is the ground truth; this is the pace's own bound.
    served = summary["upstream_requests_served"]
    assert 30 <= served <= 5 * summary["duration_s"] + 1, (served, summary["duration_s"])


def test_stalled_streams_are_a_cause_of_their_own(tmp_path: Path) -> None:
    """Every upstream stream stalls for 3 s midway; with a 1 s stall timeout each one is counted
    as timeout_stall, not as a cut stream or a total timeout; with no request completed, nothing
    could be measured (exit 2), and the line says the stalls were why."""
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "StreamUser",
        "--users",
        "2",
        "--seconds",
        "4",
        "--emulator-latency",
        "zero",
        "--tpot-ms",
        "5",
        "--fault-rates",
        '{"slow-stream": 1.0}',
        "--stall-timeout",
        "1",
        "--max-neurons",
        "5000",
    )
    assert code == 2, output
    assert set(summary["failures"]) == {"timeout_stall"}, summary["failures"]
    assert summary["error_rate"] == 1.0
    assert "nothing could be measured: no request completed; all" in output and "timeout_stall)" in output


@pytest.mark.parametrize(
    ("defect", "args", "seen"),
    [
        (
            "stop_at_limit",
            ["--classes", "StreamUser"],
            lambda s: s["truncation"]["@cf/meta/llama-3.1-8b-instruct-fast|64"]["silent_rate"] == 1.0,
        ),
        ("stream_without_done", ["--classes", "StreamUser"], lambda s: s["failures"].get("cut_stream", 0) > 0),
        (
            "quota_as_500",
            ["--classes", "ChatUser", "--daily-neurons", "40"],
            lambda s: s["failures"].get("gateway_5xx", 0) > 0 and "daily_quota" not in s["failures"],
        ),
    ],
)
def test_load_profiles_expose_load_relevant_defects(tmp_path: Path, defect: str, args: list[str], seen) -> None:
    code, summary, output = _run(
        tmp_path,
        *args,
        "--users",
        "2",
        "--seconds",
        "4",
        "--emulator-latency",
        "zero",
        "--gateway-defects",
        defect,
    )
    assert seen(summary), (defect, summary)


@pytest.mark.parametrize("continued", [False, True])
def test_long_answer_profile_shows_what_continuation_buys(tmp_path: Path, continued: bool) -> None:
    """The long-answer prompt set with a zero-truncation threshold: the plain gateway breaches
    it (every answer cut at 256 tokens), the gateway that continues cut answers meets it."""
    settings = ["--gateway-env", 'continuation_models=["*"]'] if continued else []
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ChatUser",
        "StreamUser",
        "--users",
        "2",
        "--seconds",
        "5",
        "--emulator-latency",
        "zero",
        *settings,
        "--prompts",
        "long-answer",
        "--max-truncation-rate",
        "0",
    )
    assert summary["requests"] > 0 and summary["failures"] == {}, output
    if continued:
        assert code == 0 and summary["truncation_rate"] == 0.0, output
        assert summary["upstream_requests_served"] > summary["requests"]  # the continuations
    else:
        assert code == 1 and summary["truncation_rate"] == 1.0, output
        assert "THRESHOLD BREACHED: truncation rate" in output


def test_a_wrong_key_stops_the_run_at_once_and_exits_2(tmp_path: Path) -> None:
    """Refused requests measure nothing: the run stops after its first few, says why in one line,
    and exits 2 (could not measure), never 0 at a 100% error rate."""
    code, summary, output = _run(
        tmp_path,
        "--classes",
        "ChatUser",
        "--users",
        "2",
        "--seconds",
        "30",
        "--emulator-latency",
        "zero",
        "--",  # to Locust: the embedded gateway's own key is replaced by a wrong one
        "--api-key",
        "sk-wrong",
    )
    assert code == 2, output
    assert "the key was refused" in summary["stop_reason"], summary
    assert set(summary["failures"]) == {"auth"}
    assert "workerprobe load: stopping: the first" in output
