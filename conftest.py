"""This repository's tests. The suite's plugin (target, pre-flight, budget, reports), loaded by
its entry point, is on for them (`workerprobe = true` in pyproject.toml); the suite's own tests
live in the package (src/workerprobe/suite/cases).

With the embedded default, nothing is written outside the tests' temporary folders: the state
directory (the gateway's default database, ledgers) points into one. Against a deployed Worker the
project's own tests (tests/) are not collected: they need the embedded default."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from workerprobe.suite.target import configured

TESTS = Path(__file__).resolve().parent / "tests"

if configured() is None and "WORKERPROBE_STATE_DIR" not in os.environ:
    os.environ["WORKERPROBE_STATE_DIR"] = tempfile.mkdtemp(prefix="workerprobe-state-")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if configured() is not None and collection_path.resolve().parent == TESTS:
        return True
    return None
