"""bench/loadgen.py reads each tool's own report (the shapes GuideLLM 0.8.1 and AIPerf 0.13.0
write) and the emulator's trace the same way for all of them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

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
