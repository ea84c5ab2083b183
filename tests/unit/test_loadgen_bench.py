"""bench/loadgen.py reads each tool's own report (the shapes GuideLLM 0.8.1 and AIPerf 0.13.0
write) and the emulator's trace the same way for all of them."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.emulator.conftest import TEXT_MODEL, TOKEN, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_loadgen", ROOT / "bench" / "loadgen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stats(median: float) -> dict[str, dict[str, float]]:
    return {"successful": {"median": median}}


def test_guidellm_report(loadgen: ModuleType, tmp_path: Path) -> None:
    metrics = {
        "request_totals": {"successful": 90, "errored": 10, "incomplete": 5, "total": 105},
        "time_to_first_token_ms": _stats(207.6),
        "inter_token_latency_ms": _stats(20.0),
    }
    (tmp_path / "guidellm.json").write_text(json.dumps({"benchmarks": [{"metrics": metrics}]}))
    seen = loadgen.measured("guidellm", tmp_path)
    assert seen["ttft"] == pytest.approx(0.2076) and seen["tpot"] == pytest.approx(0.020)
    assert seen["itl"] is None  # GuideLLM reports no gap between chunks
    assert seen["requests"] == 100 and seen["error_rate"] == pytest.approx(0.1)  # incomplete: cut by the end


def test_aiperf_report(loadgen: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "aiperf").mkdir()
    report = {
        "request_count": {"unit": "requests", "avg": 332.0},
        "error_summary": [{"error_details": {"code": 400}, "count": 8}],
        "time_to_first_token": {"unit": "ms", "p50": 210.5},
        "inter_token_latency": {"unit": "ms", "p50": 20.02},
        "inter_chunk_latency": {"unit": "ms", "p50": 19.95},
    }
    (tmp_path / "aiperf" / "profile_export_aiperf.json").write_text(json.dumps(report))
    seen = loadgen.measured("aiperf", tmp_path)
    assert seen["ttft"] == pytest.approx(0.2105) and seen["tpot"] == pytest.approx(0.02002)
    assert seen["itl"] == pytest.approx(0.01995)
    assert seen["requests"] == 340 and seen["error_rate"] == pytest.approx(8 / 340)


def test_ground_truth_is_the_emulators_trace_of_every_call(loadgen: ModuleType) -> None:
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "Write a long story"}], "max_tokens": 6}
    with running(WORKERPROBE_EMULATOR_TRACE_ALL="true", WORKERPROBE_EMULATOR_TPOT_MS="5") as emulator:
        for _ in range(3):  # no x-request-id: traced all the same
            with httpx.stream(
                "POST",
                f"{emulator.url}{emulator.path('a', 'v1/chat/completions')}",
                json={**body, "stream": True},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                response.read()
        truth = loadgen.ground_truth(emulator.url)
    assert truth["calls"] == 3 and truth["tokens"] == 18
    assert truth["ttft"] >= 0 and truth["itl"] >= 0.004 and truth["tpot"] >= 0.004


def _result(tool: str, level: int, ttft_error: float, share: float, error_rate: float = 0.0) -> dict[str, Any]:
    return {
        "tool": tool,
        "concurrency": level,
        "measured": {"error_rate": error_rate},
        "error_s": {"ttft": ttft_error, "tpot": 0.0001, "itl": None},
        "ttft_error_share": share,
        "cpu_s_per_1k_tokens": 0.1,
    }


def test_capacity_needs_every_round_under_five_percent(
    loadgen: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(loadgen, "OUT", tmp_path)
    results = [
        _result("workerprobe", 32, 0.002, 0.01),
        _result("workerprobe", 32, 0.003, 0.015),
        _result("workerprobe", 128, 0.004, 0.02),
        _result("workerprobe", 128, 0.012, 0.06),  # one round over 5%: 128 does not count
        _result("aiperf", 32, 0.001, 0.005, error_rate=0.2),  # too many request errors
    ]
    args = argparse.Namespace(seconds=15.0, rounds=2, busy=False)
    loadgen._report(args, [32, 128], ["workerprobe", "aiperf"], results)
    report = json.loads((tmp_path / "loadgen.json").read_text())
    assert report["capacity_one_core"] == {"workerprobe": 32, "aiperf": None}
    table = capsys.readouterr().out
    assert "2.5 (2.0-3.0)" in table  # the median over the rounds, then the spread
    assert "8.0 (4.0-12.0)" in table
