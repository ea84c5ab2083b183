"""This repository's tests: the suite's pytest plugin (target, pre-flight, budget, reports).

With the embedded default, nothing is written outside the tests' temporary folders: the state
directory (the gateway's default database, ledgers) points into one."""

from __future__ import annotations

import os
import tempfile

from workerprobe.suite.target import configured

pytest_plugins = ["workerprobe.suite.plugin"]

if configured() is None and "WORKERPROBE_STATE_DIR" not in os.environ:
    os.environ["WORKERPROBE_STATE_DIR"] = tempfile.mkdtemp(prefix="workerprobe-state-")
