"""Root pytest configuration: the run header says what is under test."""

from __future__ import annotations

import platform

import workerprobe


def pytest_report_header() -> list[str]:
    return [
        f"workerprobe {workerprobe.__version__} on {platform.machine()}, Python {platform.python_version()}",
        "target under test: the embedded Workers AI emulator (started per test session on a free loopback port)",
    ]
