"""Root pytest configuration: which target is under test, and the fixtures that reach it.

`CLOUDFLARE_WORKER_URL` and `API_KEY` (environment, then `.env`) select a deployed Worker;
with neither set, each test process starts the embedded default: the workerprobe gateway in
front of the Workers AI emulator, as real processes on free loopback ports.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import workerprobe
from workerprobe.suite.target import Target, configured, embedded


def pytest_report_header() -> list[str]:
    target = configured()
    under_test = (
        target.describe()
        if target
        else ("the embedded default (workerprobe gateway + Workers AI emulator, on free loopback ports)")
    )
    return [
        f"workerprobe {workerprobe.__version__} on {platform.machine()}, Python {platform.python_version()}",
        f"target under test: {under_test}",
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(Path(session.config.rootpath) / "reports" / "contract-cases", ignore_errors=True)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The server under test (started here when it is the embedded default)."""
    chosen = configured()
    if chosen is not None:
        yield chosen
        return
    with embedded(tmp_path_factory.mktemp("embedded") / "gateway.sqlite3") as started:
        yield started


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Each test process leaves the number of contract requests it sent, for the summary."""
    from tests.contract.conftest import CASES

    if CASES["count"]:
        worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
        out = Path(session.config.rootpath) / "reports" / "contract-cases"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{worker}.txt").write_text(str(CASES["count"]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    out = Path(config.rootpath) / "reports" / "contract-cases"
    if hasattr(config, "workerinput") or not out.is_dir():
        return
    total = sum(int(p.read_text()) for p in out.glob("*.txt"))
    terminalreporter.write_line(f"contract requests sent by generated cases: {total}")
