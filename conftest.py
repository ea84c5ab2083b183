"""Root pytest configuration: which target is under test, and the fixtures that reach it.

`CLOUDFLARE_WORKER_URL` and `API_KEY` (environment, then `.env`) select a deployed Worker;
with neither set, each test process starts the embedded default: the workerprobe gateway in
front of the Workers AI emulator, as real processes on free loopback ports.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

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


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The server under test (started here when it is the embedded default)."""
    chosen = configured()
    if chosen is not None:
        yield chosen
        return
    with embedded(tmp_path_factory.mktemp("embedded") / "gateway.sqlite3") as started:
        yield started
