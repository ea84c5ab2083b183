"""The suite as a pytest plugin: which target is under test, the pre-flight, the shared budget, the
objects left behind, the per-operation verdicts of the contract tests, and the run's reports.

Registered by entry point (`pytest11`), it does nothing until asked: `--workerprobe` (what
`workerprobe test` passes), `--workerprobe-url URL`, or the ini option `workerprobe = true` (this
repository's pyproject.toml). Asked with a flag, it adds the suite's tests (workerprobe.suite.cases)
to what pytest collects, so that `pytest -p workerprobe --workerprobe-url URL` in any project runs
the suite beside that project's own tests.

`CLOUDFLARE_WORKER_URL` and `API_KEY` (options, environment, then `.env`) select a deployed
Worker; with neither set, each test process starts the embedded default: the workerprobe gateway
in front of the Workers AI emulator, as real processes on free loopback ports.

Against a deployed Worker only the suite runs, and the exit code is the target's verdict:
0 every MUST holds, 1 a MUST fails, 2 the run could not verify.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import workerprobe
from workerprobe.suite import contract, preflight
from workerprobe.suite.budget import Budget
from workerprobe.suite.cases import CASES, CONTRACT, SCENARIOS
from workerprobe.suite.conformance import write_matrix
from workerprobe.suite.findings import Findings, merge
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.reporting import write_allure_metadata
from workerprobe.suite.target import Target, configured, embedded
from workerprobe.suite.verdict import Outcome, Verdict, clear_reports, distinct, judge, write

_ACTIVE = pytest.StashKey[bool]()


@dataclass
class _Run:
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
    verdict: Verdict | None = None
    findings: Findings | None = None


_RUN = pytest.StashKey[_Run]()


def _run(config: pytest.Config) -> _Run:
    return config.stash[_RUN]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _active(config: pytest.Config) -> bool:
    return config.stash.get(_ACTIVE, False)


def _reports(config: pytest.Config) -> Path:
    chosen = config.getoption("--workerprobe-reports")
    return Path(chosen) if chosen else Path(config.invocation_params.dir) / "reports"


def _in(path: Path, folder: Path) -> bool:
    return folder == path or folder in path.parents


def _parts(config: pytest.Config) -> Path:
    """This run's part files (one folder per run: two runs in one checkout never meet)."""
    return _reports(config) / "parts" / _run(config).run_id


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workerprobe")
    group.addoption(
        "--max-neurons",
        type=float,
        default=float(os.environ.get("WORKERPROBE_MAX_NEURONS", "300")),
        help="Workers AI neurons the whole run may spend on a deployed target, all test processes together "
        "(default 300, 3%% of the free daily allocation)",
    )
    group.addoption(
        "--workerprobe-url", default=None, help="the target's base URL ending in /v1 (CLOUDFLARE_WORKER_URL)"
    )
    group.addoption("--workerprobe-key", default=None, help="the target's API key (API_KEY)")
    group.addoption(
        "--workerprobe",
        action="store_true",
        help="run the workerprobe suite (with no --workerprobe-url: against the target of the environment or .env, "
        "else the embedded default)",
    )
    group.addoption("--workerprobe-reports", default=None, help="where the suite's reports go (default: ./reports)")
    parser.addini("workerprobe", type="bool", default=False, help="the workerprobe suite plugin is on")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "family(name): the endpoint family a scenario test covers")
    config.addinivalue_line("markers", "client(name): the official SDK a scenario drives (python, node)")
    config.addinivalue_line("markers", "must: an official OpenAI client breaks or silently misbehaves when this fails")
    config.addinivalue_line("markers", "should: differs from the OpenAI reference behaviour without breaking a client")
    asked = bool(config.getoption("--workerprobe") or config.getoption("--workerprobe-url"))
    config.stash[_ACTIVE] = asked or bool(config.getini("workerprobe"))
    if not _active(config):
        return
    for option, name in (("--workerprobe-url", "CLOUDFLARE_WORKER_URL"), ("--workerprobe-key", "API_KEY")):
        value = config.getoption(option)
        if value:
            os.environ[name] = value
    if asked and not any(_in(Path(arg.split("::")[0]).resolve(), CASES) for arg in config.args):
        config.args.append(str(CASES))  # the suite beside whatever else was asked for
    if _is_worker(config):
        config.stash[_RUN] = _Run(str(config.workerinput["workerprobe_run"]))  # type: ignore[attr-defined]
    else:
        now = datetime.now(UTC)
        config.stash[_RUN] = _Run(f"wp-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}", now.isoformat(timespec="seconds"))
        _CONTROLLER["config"] = config


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    if _active(node.config):
        node.workerinput["workerprobe_run"] = _run(node.config).run_id


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not _active(config):
        return []
    target = configured()
    under_test = target.describe() if target else "the embedded default (workerprobe gateway + Workers AI emulator)"
    lines = [
        f"workerprobe {workerprobe.__version__} on {platform.machine()}, Python {platform.python_version()}",
        f"target under test: {under_test}; run {_run(config).run_id}",
    ]
    if target is not None:
        lines.append("running the suite only (workerprobe.suite.cases: contract, scenarios)")
        if not target.emulated:
            lines.append(
                f"this run can spend at most {config.getoption('--max-neurons'):g} neurons (--max-neurons); "
                "generation is capped at 16 tokens a call"
            )
    return lines


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not _active(config) or _is_worker(config):
        return
    reports = _reports(config)
    for stale in (reports / "parts").glob("wp-*"):  # runs that died a day ago or more
        if stale.is_dir() and time.time() - stale.stat().st_mtime > 86_400:
            shutil.rmtree(stale, ignore_errors=True)
    if os.environ.get("WORKERPROBE_PREFLIGHT") == "done":  # `workerprobe test` did all this before pytest
        return
    clear_reports(reports)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    for warning in preflight.env_warnings(Path(".env"), dict(os.environ)):
        if terminal is not None:
            terminal.write_line(warning, yellow=True)
    target = configured()
    if target is None:
        return
    result = preflight.check(target)
    if terminal is not None:
        terminal.write_line(result.line, green=result.ok, red=not result.ok)
    if not result.ok:
        pytest.exit("workerprobe verdict: UNVERIFIED (pre-flight failed; no test was run); exit 2", returncode=2)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The server under test (started here when it is the embedded default)."""
    chosen = configured()
    if chosen is not None:
        yield chosen
        return
    with embedded(tmp_path_factory.mktemp("embedded") / "gateway.sqlite3") as started:
        yield started


@pytest.fixture(scope="session")
def run_id(request: pytest.FixtureRequest) -> str:
    return _run(request.config).run_id


@pytest.fixture(scope="session")
def budget(request: pytest.FixtureRequest, target: Target) -> Budget | None:
    """The run's one neuron budget (None when no neuron is real)."""
    if target.emulated:
        return None
    return Budget(_parts(request.config) / "budget.sqlite3", request.config.getoption("--max-neurons"))


@pytest.fixture(scope="session")
def ledger(request: pytest.FixtureRequest, target: Target, run_id: str) -> Iterator[Ledger | None]:
    """What this process creates on a configured target, deleted when the session ends."""
    if target.embedded:
        yield None
        return
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    kept = Ledger(target.root, target.api_key, run_id, worker)
    yield kept
    contract.FINDINGS.cleanup = kept.delete_all()


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outside schemathesis's, whichever registered first
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Generator[None, Any, Any]:
    """Each operation's test is a child of its module with a node id of its own
    (`test_schema.py::test_coverage[POST /v1/chat/completions]`), so that any one can be rerun by
    id: pytest 9 matches a parametrized id against a module's children, and builds the id from
    the item's original name, which schemathesis's items share."""
    result = yield
    if not _active(collector.config):
        return result
    if type(result).__name__ != "SchemathesisCase":
        return result
    items = result.collect()
    for item in items:
        label = getattr(item, "operation_label", None)
        if label is not None and not getattr(item, "callspec", None):
            item._id = collector.id.child(item.originalname).with_params(label)
    return items


def _scenario(item: pytest.Item) -> bool:
    return _in(Path(item.path), SCENARIOS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The scenarios first: they spend their share of the budget before the generated cases can
    spend past theirs (a server that ignores an invalid token limit generates at length)."""
    if _active(config):
        items.sort(key=lambda item: 0 if _scenario(item) else 1)


def _contract_phase(item: pytest.Item) -> str | None:
    name = getattr(item, "originalname", "") or ""
    phase = name.removeprefix("test_")
    return phase if Path(item.path) == CONTRACT / "test_schema.py" and phase in contract.PHASES else None


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost, as a conftest plugin would be
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A contract test runs every case, then fails once, naming every group of MUST findings."""
    phase = _contract_phase(item)
    label = getattr(item, "operation_label", None)
    if phase is None or label is None:
        return (yield)
    import allure

    allure.dynamic.parameter("operation", label)
    allure.dynamic.parameter("phase", phase)
    allure.dynamic.title(f"{label} ({phase})")  # type: ignore[no-untyped-call]
    before = contract.FINDINGS.total_requests
    result = yield
    target = getattr(item, "funcargs", {}).get("target")
    strict = bool(target is not None and target.embedded)
    groups = contract.FINDINGS.of(label, phase)
    levels = [g.level for g in groups]
    item.user_properties.append(
        (
            "workerprobe_progress",
            (
                f"{label} ({phase})",
                contract.FINDINGS.total_requests - before,
                levels.count("MUST"),
                levels.count("SHOULD"),
            ),
        )
    )
    message = contract.verdict_of(groups, strict=strict)
    if message is not None:
        pytest.fail(message, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost, as a conftest plugin would be
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """An operation the spec gives no examples for has no examples phase: say so in those words."""
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and "told to run no test cases" in str(longrepr[2]):
        report.longrepr = (longrepr[0], longrepr[1], "Skipped: the spec gives no examples for this operation")
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Scenario tests carry their family, client and level to the controller."""
    if not _scenario(item) or not _active(item.config):
        return
    family = item.get_closest_marker("family")
    client = item.get_closest_marker("client")
    level = "MUST" if item.get_closest_marker("must") else "SHOULD"
    item.user_properties += [
        ("workerprobe_family", family.args[0] if family else "chat"),
        ("workerprobe_client", client.args[0] if client else "python"),
        ("workerprobe_level", level),
    ]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The controller keeps every scenario's outcome (reports from all test processes pass here)."""
    props = dict(report.user_properties)
    config = _CONTROLLER.get("config")
    if config is None:
        return
    store = _run(config)
    if report.when == "call" and _in((Path(config.rootpath) / report.fspath).resolve(), CASES):
        _progress(config, store, report, props.get("workerprobe_progress"))  # the suite's tests only
    if report.failed and not _in((Path(config.rootpath) / report.fspath).resolve(), CASES):
        store.others_failed += 1
        return
    if report.when != "call" and report.failed:
        store.errors += 1
    if "workerprobe_family" not in props:
        return
    if report.when == "call" or (report.when == "setup" and report.skipped):
        message = str(report.longrepr[-1]) if report.skipped and isinstance(report.longrepr, tuple) else ""
        if report.failed:
            message = str(getattr(report.longrepr, "reprcrash", None) and report.longrepr.reprcrash.message)  # type: ignore[union-attr]
        store.outcomes.append(
            Outcome(
                report.nodeid,
                str(props["workerprobe_family"]),
                str(props["workerprobe_client"]),
                str(props["workerprobe_level"]),
                report.outcome,
                message,
            )
        )


_CONTROLLER: dict[str, pytest.Config] = {}
PROGRESS_EVERY_S = 5.0


def _progress(config: pytest.Config, store: _Run, report: pytest.TestReport, figures: Any) -> None:
    """A line every few seconds while the suite runs: the test just done (an operation and phase,
    or a scenario), the generated requests sent so far and the findings so far."""
    store.done += 1
    last = report.nodeid.rsplit("::", 1)[-1]
    if figures:
        name, sent, must, should = figures
        store.sent, store.must, store.should = (
            store.sent + int(sent),
            store.must + int(must),
            store.should + int(should),
        )
        last = str(name)
    now = time.monotonic()
    if now - store.last_line < PROGRESS_EVERY_S:
        return
    store.last_line = now
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.ensure_newline()
        terminal.write_line(
            f"workerprobe: {store.done} tests done (last: {last}); {store.sent} generated requests; "
            f"findings so far: {store.must} MUST, {store.should} SHOULD",
            cyan=True,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not _active(config):
        return
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    if contract.FINDINGS.total_requests or contract.FINDINGS.not_run or contract.FINDINGS.cleanup != (0, 0):
        contract.FINDINGS.dump(_parts(config) / f"findings-{worker}.json")
    if _is_worker(config):
        return
    parts = sorted(_parts(config).glob("findings-*.json"))
    findings = merge(parts)
    target = configured()
    describe = target.describe() if target else "the embedded default"
    header = {
        "target": describe,
        "run_id": _run(config).run_id,
        "started": _run(config).started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": workerprobe.__version__,
    }
    cost: dict[str, Any] = {}
    budget_file = _parts(config) / "budget.sqlite3"
    if budget_file.exists():
        budget = Budget(budget_file, 0)
        spend = budget.spend()
        cost = {
            "max_neurons": spend.max_neurons,
            "spent_neurons": round(spend.spent, 2),
            "by_contract_cases": round(budget.spend("contract").spent, 2),
            "by_scenarios": round(budget.spend("scenarios").spent, 2),
            "of_which_worst_case": round(spend.worst_case, 2),
            "still_held": round(spend.held, 2),
            "calls": spend.calls,
            "refused_for_budget": spend.refused,
        }
    outcomes = _run(config).outcomes
    if not parts and not outcomes:
        return
    reports = _reports(config)
    write_matrix(
        findings,
        contract.operations(),
        reports,
        f"Target: {describe}; run {header['run_id']}, "
        f"{header['started']} to {header['finished']}, workerprobe {header['version']}",
    )
    verdict = judge(findings, outcomes, cost, errors=_run(config).errors, operations=contract.operations())
    shutil.rmtree(_parts(config), ignore_errors=True)
    write(reports, header, verdict, findings)
    _run(config).verdict, _run(config).findings = verdict, findings
    if target is not None and session.exitstatus in (0, 1):
        # the suite's verdict (a SHOULD test may fail and the verdict still be PASS), never
        # hiding a failed test of the project the suite runs beside
        session.exitstatus = max(verdict.exit_code, 1 if _run(config).others_failed else 0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _active(config) or _is_worker(config):
        return
    allure_dir = getattr(config.option, "allure_report_dir", None)
    target = configured()
    if allure_dir:
        write_allure_metadata(
            Path(allure_dir),
            {
                "target": target.describe() if target else "the embedded default",
                "workerprobe": workerprobe.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
        )
    verdict, findings = _run(config).verdict, _run(config).findings
    if verdict is None or findings is None:
        return
    write = terminalreporter.write_line
    write("")
    write(
        f"contract requests sent by generated cases: {findings.total_requests}; distinct findings: "
        f"{distinct(list(findings.groups.values()))} (reports/findings.md, reports/conformance.md, reports/summary.md)"
    )
    if verdict.cost:
        c = verdict.cost
        write(
            f"neurons spent on the deployed target: {c['spent_neurons']} of {c['max_neurons']:g} "
            f"(contract cases {c['by_contract_cases']}, scenarios {c['by_scenarios']}; "
            f"{c['of_which_worst_case']} of it charged at the worst case, no usage reported); "
            f"calls not made for the budget: {c['refused_for_budget']}"
        )
    if findings.cleanup != (0, 0):
        deleted, left = findings.cleanup
        write(f"objects this run created on the target: {deleted} deleted, {left} left (workerprobe clean)")
    width = max(len(f) for f in verdict.table)
    write(f"{'family':{width}}  official Python SDK / official Node SDK")
    for family, row in verdict.table.items():
        write(f"{family:{width}}  {row['python']} / {row['node']}")
    for g in verdict.top[:8]:
        where = g["operations"][0] if len(g["operations"]) == 1 else f"{len(g['operations'])} operations"
        write(f"  {g['level']} {g['rule']} x{g['count']} on {where}: {g['message'][:100]}")
    write(
        verdict.line, bold=True, red=verdict.exit_code == 1, yellow=verdict.exit_code == 2, green=verdict.exit_code == 0
    )
