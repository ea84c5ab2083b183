"""Root pytest configuration: which target is under test, and the fixtures that reach it.

`CLOUDFLARE_WORKER_URL` and `API_KEY` (environment, then `.env`) select a deployed Worker;
with neither set, each test process starts the embedded default: the workerprobe gateway in
front of the Workers AI emulator, as real processes on free loopback ports.
"""

from __future__ import annotations

import platform
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import workerprobe
from workerprobe.suite.budget import Budget
from workerprobe.suite.conformance import write_matrix
from workerprobe.suite.reporting import write_allure_metadata
from workerprobe.suite.target import Target, configured, embedded


def pytest_report_header() -> list[str]:
    target = configured()
    under_test = (
        target.describe()
        if target
        else ("the embedded default (workerprobe gateway + Workers AI emulator, on free loopback ports)")
    )
    lines = [
        f"workerprobe {workerprobe.__version__} on {platform.machine()}, Python {platform.python_version()}",
        f"target under test: {under_test}",
    ]
    if target is not None:
        lines.append("running the contract and scenario tests only (tests/contract, tests/scenarios)")
    return lines


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--max-neurons",
        type=float,
        default=300.0,
        help="cap on the Workers AI neurons the suite may spend on a deployed target "
        "(default 300, 3%% of the free daily allocation)",
    )


@pytest.fixture(scope="session")
def budget(request: pytest.FixtureRequest) -> Budget:
    """This test process's share of --max-neurons (the processes split it evenly)."""
    workers = int(getattr(request.config, "workerinput", {}).get("workercount", 1))
    spend = Budget(request.config.getoption("--max-neurons") / workers)
    request.session._workerprobe_budget = spend  # type: ignore[attr-defined]
    return spend


# With a deployed target, only the suite runs: the project's own tests need no target.
_SUITE = ("contract", "scenarios")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if configured() is None:
        return None
    tests = Path(config.rootpath) / "tests"
    if collection_path.parent == tests and collection_path.is_dir() and collection_path.name not in _SUITE:
        return True
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(_parts(session.config), ignore_errors=True)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The server under test (started here when it is the embedded default)."""
    chosen = configured()
    if chosen is not None:
        yield chosen
        return
    with embedded(tmp_path_factory.mktemp("embedded") / "gateway.sqlite3") as started:
        yield started


def _parts(config: pytest.Config) -> Path:
    return Path(config.rootpath) / "reports" / "parts"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Each test process leaves what its contract tests saw, for the controller to merge."""
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    parts = _parts(session.config)
    spent = getattr(session, "_workerprobe_budget", None)
    if spent is not None:
        parts.mkdir(parents=True, exist_ok=True)
        (parts / f"neurons-{worker}.txt").write_text(f"{spent.spent} {spent.refused}")
    contract = sys.modules.get("tests.contract.conftest")
    if contract is None or not contract.CASES["count"]:
        return
    parts.mkdir(parents=True, exist_ok=True)
    (parts / f"cases-{worker}.txt").write_text(str(contract.CASES["count"]))
    contract.RECORDER.dump(parts / f"conformance-{worker}.json")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    allure_dir = getattr(config.option, "allure_report_dir", None)
    if allure_dir:
        target = configured()
        write_allure_metadata(
            Path(allure_dir),
            {
                "target": target.describe() if target else "the embedded default",
                "workerprobe": workerprobe.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
        )
    parts = _parts(config)
    if not parts.is_dir():
        return
    spends = [p.read_text().split() for p in parts.glob("neurons-*.txt")]
    chosen = configured()
    if spends and chosen is not None and not chosen.emulated:
        spent, refused = sum(float(s[0]) for s in spends), sum(int(s[1]) for s in spends)
        terminalreporter.write_line(
            f"neurons spent on the deployed target (estimated): {spent:.2f} of {config.getoption('--max-neurons'):g};"
            f" calls not run for the budget: {refused}"
        )
    if not any(parts.glob("conformance-*.json")):
        return
    from tests.contract.conftest import operations

    total = sum(int(p.read_text()) for p in parts.glob("cases-*.txt"))
    terminalreporter.write_line(f"contract requests sent by generated cases: {total}")
    target = configured()
    summary = write_matrix(
        sorted(parts.glob("conformance-*.json")),
        operations(),
        Path(config.rootpath) / "reports",
        target.describe() if target else "the embedded default",
    )
    for level, counts in summary.items():
        shown = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        terminalreporter.write_line(f"conformance {level}: {shown}  (reports/conformance.md)")
