"""A typo never gives a green run: a near miss of the target's names, or a base URL without /v1,
stops the run with exit 2 and says which name or URL, before any test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workerprobe.suite.target import TargetError, configured

CLEAN = {k: v for k, v in os.environ.items() if k not in ("CLOUDFLARE_WORKER_URL", "API_KEY", "WORKERPROBE_TARGET")}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CLOUDFLARE_WORKER_URL", "API_KEY", "WORKERPROBE_TARGET"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("CLOUDFLARE_WORKER_ULR=https://w.example/v1", "CLOUDFLARE_WORKER_ULR"),
        ("cloudflare_worker_url=https://w.example/v1", "cloudflare_worker_url"),
        ("OPENAI_BASE_URL=https://w.example/v1", "OPENAI_BASE_URL"),
        ("API_KY=sk-1", "API_KY"),
    ],
)
def test_a_near_miss_in_dotenv_stops_the_run(
    environ: pytest.MonkeyPatch, tmp_path: Path, line: str, named: str
) -> None:
    (tmp_path / ".env").write_text(line + "\n")
    with pytest.raises(TargetError, match=named):
        configured(tmp_path / ".env")


def test_a_near_miss_in_the_environment_stops_the_run(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("CLOUDFLARE_WORKERS_URL", "https://w.example/v1")
    with pytest.raises(TargetError, match="the environment sets CLOUDFLARE_WORKERS_URL"):
        configured(tmp_path / ".env")


def test_a_url_with_a_mistyped_key_names_the_key(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLOUDFLARE_WORKER_URL=https://w.example/v1\nAPI_KYE=sk-1\n")
    with pytest.raises(TargetError, match="API_KYE"):
        configured(tmp_path / ".env")


def test_names_that_only_look_alike_from_afar_are_left_alone(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("GPG_KEY", "A0B1")  # set in Python's container images; 2 edits from API_KEY
    environ.setenv("OPENAI_API_KEY", "sk-elsewhere")
    (tmp_path / ".env").write_text("CF_API_TOKEN=x\n")
    assert configured(tmp_path / ".env") is None  # the embedded default, as asked
    environ.setenv("WORKERPROBE_TARGET", "embedded")
    environ.setenv("CLOUDFLARE_WORKER_ULR", "https://w.example/v1")
    assert configured(tmp_path / ".env") is None  # the embedded default on purpose


def test_a_base_url_without_v1_is_refused_not_changed(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("CLOUDFLARE_WORKER_URL", "https://w.example")
    environ.setenv("API_KEY", "sk-1")
    with pytest.raises(TargetError, match=r"does not end in /v1.*https://w.example/v1"):
        configured(tmp_path / ".env")
    environ.setenv("CLOUDFLARE_WORKER_URL", "https://w.example/v1/")
    target = configured(tmp_path / ".env")
    assert target is not None and target.v1 == "https://w.example/v1"


def test_the_command_ends_unverified_and_names_the_typo(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLOUDFLARE_WORKER_ULR=https://w.example/v1\nAPI_KEY=sk-1\n")
    done = subprocess.run(
        [sys.executable, "-m", "workerprobe", "test", "--report", str(tmp_path / "reports")],
        cwd=tmp_path, env=CLEAN, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("workerprobe test: UNVERIFIED") and last.endswith("exit 2")
    assert "CLOUDFLARE_WORKER_ULR" in last
    assert not list(tmp_path.glob("reports/*/summary.json"))  # no test ran


@pytest.mark.parametrize(
    "command",
    [
        ["workerprobe", "test", "https://w.example/v1"],
        ["workerprobe", "load", "https://w.example/v1"],
        ["pytest", "-p", "workerprobe", "--workerprobe-url", "https://w.example/v1", "-q"],
    ],
    ids=["test", "load", "plugin"],
)
def test_a_url_without_api_key_is_one_clear_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    """The plugin read the error as a collection error (exit 4 and a traceback's last line)."""
    # as a user's shell has it: none of the run-control variables `workerprobe test` gives its own
    # processes (this test may run inside one: `make test`)
    env = {k: v for k, v in CLEAN.items() if not k.startswith("WORKERPROBE_") or k.endswith("_DIR")}
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    assert "CLOUDFLARE_WORKER_URL is set but API_KEY is not: the suite needs both" in output
    assert "Traceback" not in output and "TargetError" not in output, output[-2000:]
