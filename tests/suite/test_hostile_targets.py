"""`workerprobe test` and `workerprobe load` against targets that misbehave (workerprobe.hostile):
each ends by its own bounds with a verdict (exit 1 or 2) that says what happened, never a pass, a
hang or the machine's memory. The figures (wall time and peak memory for every behaviour) are
`make chaos`'s (bench/chaos_hostile.py)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workerprobe.procs import serve

WORKERPROBE = [sys.executable, "-m", "workerprobe"]
HANG_GUARD_S = 600  # a run still going after this has not ended by its own bounds: the test fails


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[str]:
    with serve(["--mode", request.param], module="workerprobe.hostile") as server:
        yield f"{server.url}/v1"


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WORKERPROBE, *argv], cwd=cwd, capture_output=True, text=True, timeout=HANG_GUARD_S)


@pytest.mark.parametrize(
    ("hostile", "said"),
    [
        ("huge-body", "did not give a usable answer: the answer was larger than"),
        ("endless-stream", "did not give a usable answer"),
        ("drip", "did not give a usable answer: the answer was not complete within 3 s"),
        ("huge-headers", "does not answer"),
    ],
    indirect=["hostile"],
)
def test_a_target_that_never_gives_a_usable_answer_stops_at_the_pre_flight(
    hostile: str, said: str, tmp_path: Path
) -> None:
    done = _run("test", hostile, "--key", "sk-x", "--request-deadline", "3", "--report", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-2000:]
    assert said in done.stdout, done.stdout[-2000:]
    assert "UNVERIFIED" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize("hostile", ["endless-chat"], indirect=True)
def test_answers_that_never_end_are_a_must_finding_and_the_run_ends(hostile: str, tmp_path: Path) -> None:
    """The model list answers; every other answer is an endless stream: each is cut at the
    request's deadline and recorded as a MUST finding of its operation, sending stops after three in
    a row, and the run ends FAIL."""
    done = _run(
        "test", hostile, "--key", "sk-x", "--request-deadline", "2", "--deadline", "120",
        "--report", str(tmp_path), "--", "-k", "test_schema and (chat or models)",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:]
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "FAIL"
    bounded = [c for c in summary["causes"] if c["rule"] == "openai_answer_bounded"]
    # cut at the deadline or past the size cap, whichever a stream reached first: either is the cause
    assert any("POST /v1/chat/completions" in c["operations"] for c in bounded), summary["causes"]


@pytest.mark.parametrize("hostile", ["endless-stream", "huge-body", "drip"], indirect=True)
def test_a_load_run_that_measured_nothing_exits_2_and_says_why(hostile: str, tmp_path: Path) -> None:
    done = _run(
        "load", hostile, "--key", "sk-x", "--profile", "steady", "--users", "2", "--seconds", "4",
        "--classes", "StreamUser", "--stall-timeout", "3", "--total-timeout", "6",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-3000:]
    assert "nothing could be measured: no request completed" in done.stdout


@pytest.mark.parametrize("hostile", ["endless-chat"], indirect=True)
def test_the_sdk_scenarios_read_an_endless_answer_only_up_to_their_bounds(hostile: str, tmp_path: Path) -> None:
    """The official SDKs' scenarios, Python (a client of its own, as test_wrong_key makes) and Node,
    against answers that never end: each is cut at the stream cap and fails with what happened;
    no process of the run takes the machine's memory (unbounded, one took 20 GB, node 3 GB)."""
    done = _run(
        "test", hostile, "--key", "sk-x", "--request-deadline", "20", "--deadline", "120",
        "--report", str(tmp_path), "--", "-k", "test_wrong_key or test_node_sdk",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:]
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    failed = " ".join(c["what"] for c in summary["causes"] if c["rule"] == "scenario")
    assert "Connection error" in failed or "APIConnectionError" in failed, failed  # the bounded transport's refusal
    if shutil.which("node") and shutil.which("npm"):
        assert "larger than" in failed, failed  # the Node script's bounded fetch
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process waited for
    assert peak_mb < 1024, f"a process of the run reached {peak_mb:.0f} MB"
