"""One run's state, kept on pytest's config: whether the suite is on, the run's id and what the
controlling process hears of it, and where its reports and part files go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workerprobe.suite.findings import Findings
from workerprobe.suite.verdict import Outcome, Verdict

__all__ = ["ACTIVE", "RUN", "Run", "active", "is_worker", "parts_dir", "reports_dir", "reports_root", "run_of"]

ACTIVE = pytest.StashKey[bool]()


@dataclass
class Run:
    """One run's state in the controlling process (the workers know only its id)."""

    run_id: str
    started: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    errors: int = 0  # tests that broke in setup or teardown: the suite could not run them
    others_failed: int = 0  # failed tests that are not the suite's (a project's own, beside it)
    # progress, as the controller hears it: tests done, generated requests, findings (MUST, SHOULD)
    done: int = 0
    sent: int = 0
    must: int = 0
    should: int = 0
    last_line: float = 0.0
    last_line_done: int = 0  # tests done when the last line was written
    last_name: str = ""
    verdict: Verdict | None = None
    findings: Findings | None = None
    collected: list[str] = field(default_factory=list)  # the suite's test ids, as collected
    finished: set[str] = field(default_factory=set)  # those that ran (passed, failed or were skipped)


RUN = pytest.StashKey[Run]()


def run_of(config: pytest.Config) -> Run:
    return config.stash[RUN]


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def active(config: pytest.Config) -> bool:
    return config.stash.get(ACTIVE, False)


def reports_root(config: pytest.Config) -> Path:
    """The folder of every run's reports (`--workerprobe-reports`, default ./reports)."""
    chosen = config.getoption("--workerprobe-reports")
    return Path(chosen) if chosen else Path(config.invocation_params.dir) / "reports"


def reports_dir(config: pytest.Config) -> Path:
    """This run's reports: `<root>/<run id>/` (two runs in one root never overwrite each other)."""
    return reports_root(config) / run_of(config).run_id


def parts_dir(config: pytest.Config) -> Path:
    """This run's part files, removed when the run ends."""
    return reports_dir(config) / "parts"
