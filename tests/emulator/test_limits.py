"""Free-plan limits: the daily neuron allocation (4006 / 3036, reset at 00:00 UTC), the
per-minute limits (3021), the timeout of long generations (3046), and the usage report."""

from __future__ import annotations

import datetime as dt

from tests.emulator.conftest import TEXT_MODEL, error_of
from workerprobe.catalogue import load

QUOTA_4006 = (
    "AiError: you have used up your daily free allocation of 10,000 neurons, please upgrade to "
    "Cloudflare's Workers Paid plan if you would like to continue usage."
)
QUOTA_3036 = (
    "You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's "
    "Workers Paid plan if you would like to continue usage."
)
LONG = {"prompt": "Write a long essay about Rome", "max_tokens": 1000}


def test_daily_allocation_runs_out_and_resets_at_utc_midnight(start_emulator) -> None:
    with start_emulator(WORKERPROBE_EMULATOR_FREE_PLAN="true") as emulator:
        emulator.clock(set="2026-03-01T23:50:00+00:00")
        model = load().model(TEXT_MODEL)
        per_call = model.neurons(
            emulator.run(TEXT_MODEL, LONG, account="q").json()["result"]["usage"]["prompt_tokens"], 1000
        )
        calls = 1
        while True:
            response = emulator.run(TEXT_MODEL, LONG, account="q")
            if response.status_code != 200:
                break
            calls += 1
        assert error_of(response) == (429, 4006, QUOTA_4006)
        assert calls == -(-10_000 // per_call)  # the call that crosses the allocation still succeeds
        report = emulator.usage()
        assert report["date"] == "2026-03-01"
        account = report["accounts"]["q"]
        assert account["neurons"] >= 10_000 and account["remaining_neurons"] == 0
        assert account["errors"] == {"4006": 1}
        assert account["models"][TEXT_MODEL]["output_tokens"] == calls * 1000
        # Other accounts are not affected.
        assert emulator.run(TEXT_MODEL, LONG, account="other").status_code == 200
        # Still refused a minute before midnight, served again after it.
        emulator.clock(set="2026-03-01T23:59:00+00:00")
        assert emulator.run(TEXT_MODEL, LONG, account="q").status_code == 429
        emulator.clock(set="2026-03-02T00:00:01+00:00")
        assert emulator.run(TEXT_MODEL, LONG, account="q").status_code == 200
        assert emulator.usage()["accounts"]["q"]["requests"] == 1


def test_documented_quota_code_is_selectable(start_emulator) -> None:
    with start_emulator(WORKERPROBE_EMULATOR_DAILY_NEURONS="1", WORKERPROBE_EMULATOR_QUOTA_CODE="3036") as emulator:
        assert emulator.run(TEXT_MODEL, LONG).status_code == 200
        assert error_of(emulator.run(TEXT_MODEL, LONG)) == (429, 3036, QUOTA_3036)


def test_per_minute_limit_per_task_class(start_emulator) -> None:
    with start_emulator(WORKERPROBE_EMULATOR_FREE_PLAN="true") as emulator:
        emulator.clock(set="2026-03-01T12:00:00+00:00")
        short = {"prompt": "What is 1 + 1?"}
        statuses = [emulator.run(TEXT_MODEL, short, account="r").status_code for _ in range(300)]
        assert statuses == [200] * 300
        assert error_of(emulator.run(TEXT_MODEL, short, account="r")) == (
            429,
            3021,
            "AiError: AiError: rate limiting: inference request per min rate reached",
        )
        # Text generation shares one class: another model is limited too; embeddings are not.
        assert emulator.run("@cf/meta/llama-3.2-1b-instruct", short, account="r").status_code == 429
        assert emulator.run("@cf/baai/bge-base-en-v1.5", {"text": "a"}, account="r").status_code == 200
        emulator.clock(advance_s=61)
        assert emulator.run(TEXT_MODEL, short, account="r").status_code == 200


def test_limits_are_off_by_default(emulator) -> None:
    statuses = {
        emulator.run(TEXT_MODEL, {"prompt": "What is 1 + 1?"}, account="nolimit").status_code for _ in range(320)
    }
    assert statuses == {200}
    assert emulator.usage()["daily_neurons"] is None


def test_long_non_streamed_generation_times_out(start_emulator) -> None:
    with start_emulator(WORKERPROBE_EMULATOR_TPOT_MS="10", WORKERPROBE_EMULATOR_TIMEOUT_S="0.3") as emulator:
        assert error_of(emulator.run(TEXT_MODEL, {**LONG, "max_tokens": 100})) == (
            408,
            3046,
            "AiError: Request timeout",
        )
        assert emulator.run(TEXT_MODEL, {"prompt": "What is 1 + 1?"}).status_code == 200
        # Streaming is the way around it: the same request streams to the end.
        events = emulator.stream(TEXT_MODEL, {**LONG, "max_tokens": 100})
        assert events[-1].data == "[DONE]"


def test_usage_report_by_date(emulator) -> None:
    emulator.run(TEXT_MODEL, {"prompt": "What is 2 * 2?"}, account="report")
    today = dt.datetime.now(dt.UTC).date()
    assert "report" in emulator.http.get("/__emulator/usage", params={"date": today.isoformat()}).json()["accounts"]
    assert emulator.http.get("/__emulator/usage", params={"date": "2001-01-01"}).json()["accounts"] == {}


def test_clock_and_reset_need_test_mode(start_emulator) -> None:
    with start_emulator(WORKERPROBE_EMULATOR_TEST_MODE="false") as emulator:
        assert emulator.http.post("/__emulator/clock", json={"advance_s": 1}).status_code == 403
        assert emulator.http.post("/__emulator/reset").status_code == 403
