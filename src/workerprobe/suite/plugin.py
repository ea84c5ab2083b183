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

import argparse
import os
import platform
import time
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import workerprobe
from workerprobe.runs import new_run_id, open_run_folder
from workerprobe.suite import bounds, contract, ending, fixtures, operations, preflight, shares
from workerprobe.suite.cases import CASES, CONTRACT, SCENARIOS
from workerprobe.suite.reporting import write_allure_metadata
from workerprobe.suite.runstate import (
    ACTIVE,
    RUN,
    Run,
    active,
    is_worker,
    parts_dir,
    reports_dir,
    reports_root,
    run_of,
)
from workerprobe.suite.target import Target, TargetError, configured
from workerprobe.suite.verdict import Outcome


def _in(path: Path, folder: Path) -> bool:
    return folder == path or folder in path.parents


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
    group.addoption(
        "--workerprobe-reports",
        default=None,
        help="the reports' folder: each run writes to <folder>/<run id>/, and <folder>/latest points at the newest "
        "(default: ./reports)",
    )
    group.addoption("--workerprobe-run-id", default=None, help=argparse.SUPPRESS)  # `workerprobe test` names it
    parser.addini("workerprobe", type="bool", default=False, help="the workerprobe suite plugin is on")


@pytest.hookimpl(tryfirst=True)  # before pytest-asyncio's, which warns at its configure
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "family(name): the endpoint family a scenario test covers")
    config.addinivalue_line("markers", "client(name): the official SDK a scenario drives (python, node)")
    config.addinivalue_line("markers", "must: an official OpenAI client breaks or silently misbehaves when this fails")
    config.addinivalue_line("markers", "should: differs from the OpenAI reference behaviour without breaking a client")
    asked = bool(config.getoption("--workerprobe") or config.getoption("--workerprobe-url"))
    config.stash[ACTIVE] = asked or bool(config.getini("workerprobe"))
    if not active(config):
        return
    if not _ini(config, "asyncio_default_fixture_loop_scope"):
        # pytest-asyncio (which the suite brought) warns that a project which never asked for it leaves
        # this unset; the suite's own async fixture names its loop scope
        import warnings

        warnings.filterwarnings("ignore", 'The configuration option "asyncio_default_fixture_loop_scope" is unset')
    config.pluginmanager.register(fixtures, "workerprobe-fixtures")
    for option, name in (("--workerprobe-url", "CLOUDFLARE_WORKER_URL"), ("--workerprobe-key", "API_KEY")):
        value = config.getoption(option)
        if value:
            os.environ[name] = value
    if asked and not any(_in(Path(arg.split("::")[0]).resolve(), CASES) for arg in config.args):
        config.args.append(str(CASES))  # the suite beside whatever else was asked for
    if is_worker(config):
        config.stash[RUN] = Run(str(config.workerinput["workerprobe_run"]))  # type: ignore[attr-defined]
    else:
        now = datetime.now(UTC)
        run_id = config.getoption("--workerprobe-run-id") or new_run_id()
        config.stash[RUN] = Run(run_id, now.isoformat(timespec="seconds"))
        _CONTROLLER["config"] = config  # the run's folder is made when the suite's tests are collected


def _ini(config: pytest.Config, name: str) -> object:
    try:
        return config.getini(name)
    except ValueError:  # not a known option: the plugin that adds it is not installed
        return "unknown"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    if active(node.config):
        node.workerinput["workerprobe_run"] = run_of(node.config).run_id
        _WORKERS.add(str(node.gateway.id))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under xdist the controller learns what was collected from the first worker's list."""
    config = node.config
    if active(config) and not run_of(config).collected:
        run_of(config).collected = [i for i in ids if _of_suite(config, i)]
        _open(config)


def _of_suite(config: pytest.Config, nodeid: str) -> bool:
    """Whether a test id (or a report's path) is one of the suite's. pytest writes it relative to
    the rootdir, or, for a file outside it (the suite installed, run in another project), relative
    to the initial path it was collected from: the suite's own folder."""
    file = nodeid.split("::")[0]
    beside = (Path(config.rootpath) / file).resolve()
    if _in(beside, CASES):
        return True
    return not beside.exists() and (CASES / file).is_file()


def _target() -> Target | None:
    """The target, once the session's start has checked it (a name that cannot be what was meant
    ended the run there)."""
    try:
        return configured()
    except TargetError:
        return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not active(config):
        return []
    target = _target()
    under_test = target.describe() if target else "the embedded default (workerprobe gateway + Workers AI emulator)"
    lines = [
        f"workerprobe {workerprobe.__version__} on {platform.machine()}, Python {platform.python_version()}",
        f"target under test: {under_test}; run {run_of(config).run_id}",
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
    if not active(config) or is_worker(config):
        return
    if os.environ.get("WORKERPROBE_PREFLIGHT") == "done":  # `workerprobe test` did all this before pytest
        return
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    for warning in preflight.env_warnings(Path(".env"), dict(os.environ)):
        if terminal is not None:
            terminal.write_line(warning, yellow=True)
    try:
        target = configured()
    except TargetError as exc:
        pytest.exit(f"workerprobe verdict: UNVERIFIED ({exc}); exit 2", returncode=2)
    if target is None:
        return
    result = preflight.check(target)
    if terminal is not None:
        terminal.write_line(result.line, green=result.ok, red=not result.ok)
    if not result.ok:
        pytest.exit("workerprobe verdict: UNVERIFIED (pre-flight failed; no test was run); exit 2", returncode=2)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outside schemathesis's, whichever registered first
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Generator[None, Any, Any]:
    """Each operation's test is a child of its module with a node id of its own
    (`test_schema.py::test_coverage[POST /v1/chat/completions]`), so that any one can be rerun by
    id: pytest 9 matches a parametrized id against a module's children, and builds the id from
    the item's original name, which schemathesis's items share."""
    result = yield
    if not active(collector.config):
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
    if active(config):
        items.sort(key=lambda item: 0 if _scenario(item) else 1)
        for item in items:
            if _in(Path(item.path), CASES):
                for quiet in QUIET_WARNINGS:  # the suite's own: a project's settings need not know them
                    item.add_marker(pytest.mark.filterwarnings(quiet))


# Warnings the suite's own tests raise by design, filtered on its tests only (in any project): the
# SDKs mark the Assistants API deprecated on every call (the Worker serves it), and the libraries
# the suite drives warn of their own deprecations.
QUIET_WARNINGS = (
    "ignore:deprecated$:DeprecationWarning",
    "ignore:The Assistants API is deprecated:DeprecationWarning",
    "ignore::DeprecationWarning:openai.*",
    "ignore::DeprecationWarning:schemathesis.*",
    "ignore::DeprecationWarning:hypothesis.*",
    "ignore::pytest.PytestDeprecationWarning:pytest_asyncio.*",
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What shares the budget: the same plan in every test process (each collects every test)."""
    if active(session.config):
        session.config.stash[shares.PLAN] = shares.plan(session.items)
        if not is_worker(session.config):
            run_of(session.config).collected = [i.nodeid for i in session.items if _in(Path(i.path), CASES)]
            _open(session.config)


def _open(config: pytest.Config) -> None:
    """The run's folder, and `latest` pointed at it, once the suite's tests are among those
    collected (a pytest run of a project's own tests alone, with the plugin on, makes none)."""
    if run_of(config).collected:
        open_run_folder(reports_root(config), run_of(config).run_id)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After a test's fixtures are torn down (what it held is settled): its end counted against its
    share of the budget, and the memory its answers took back to the system (a target's large
    answers, parsed and validated, leave the heap scattered: the next test would start from its
    high water)."""
    result = yield
    if active(item.config):
        shares.finished(item)
        bounds.release_memory()
    return result


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
    family = operations.load().family_of(label)
    item.user_properties += [("operation", label), ("phase", phase), ("family", family)]
    before = contract.FINDINGS.total_requests
    result = yield
    target = getattr(item, "funcargs", {}).get("target")
    strict = bool(target is not None and target.embedded)
    groups = contract.FINDINGS.of(label, phase)
    levels = [g.level for g in groups]
    # the junit case's level: the highest of what this operation and phase broke ("none": nothing)
    item.user_properties.append(("level", "MUST" if "MUST" in levels else "SHOULD" if levels else "none"))
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
        _attach_findings(groups)
        pytest.fail(message, pytrace=False)
    return result


def _attach_findings(groups: list[Any]) -> None:
    """A failed contract test's Allure result: its level (Allure 3's categories group by it) and
    each finding's shortest reproduction, as a curl command to paste."""
    import allure

    levels = {g.level for g in groups}
    allure.dynamic.label("level", "MUST" if "MUST" in levels else "SHOULD")  # type: ignore[no-untyped-call]
    for g in sorted(groups, key=lambda g: (g.level != "MUST", -g.count))[:10]:
        if g.repro:
            allure.attach(g.repro, f"{g.level} {g.rule}: curl", allure.attachment_type.TEXT)


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
    if not _scenario(item) or not active(item.config):
        return
    family = item.get_closest_marker("family")
    client = item.get_closest_marker("client")
    level = shares.level_of(item)
    import allure

    allure.dynamic.label("level", level)  # type: ignore[no-untyped-call]
    item.user_properties += [
        ("family", family.args[0] if family else "chat"),
        ("client", client.args[0] if client else "python"),
        ("level", level),
    ]


@pytest.hookimpl(tryfirst=True)  # before junitxml writes the case's properties
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The controller keeps every scenario's outcome (reports from all test processes pass here)."""
    props = dict(report.user_properties)
    config = _CONTROLLER.get("config")
    if config is None:
        return  # a worker: the report goes to the controller as it is
    if "workerprobe_progress" in props:  # for the progress line, not a property of the junit case
        report.user_properties = [p for p in report.user_properties if p[0] != "workerprobe_progress"]
    store = run_of(config)
    ours = _of_suite(config, report.nodeid)
    if ours and (report.when == "call" or (report.when == "setup" and not report.passed)):
        store.finished.add(report.nodeid)
    if report.when == "call" and ours:
        _progress(config, store, report, props.get("workerprobe_progress"))  # the suite's tests only
    if report.failed and not ours:
        store.others_failed += 1
        return
    if report.when != "call" and report.failed:
        store.errors += 1
    if "client" not in props:
        return
    if report.when == "call" or (report.when == "setup" and report.skipped):
        message = str(report.longrepr[-1]) if report.skipped and isinstance(report.longrepr, tuple) else ""
        if report.failed:
            message = str(getattr(report.longrepr, "reprcrash", None) and report.longrepr.reprcrash.message)  # type: ignore[union-attr]
        store.outcomes.append(
            Outcome(
                report.nodeid,
                str(props["family"]),
                str(props["client"]),
                str(props["level"]),
                report.outcome,
                message,
            )
        )


_CONTROLLER: dict[str, pytest.Config] = {}
_WORKERS: set[str] = set()  # the xdist workers the controller started
PROGRESS_EVERY_S = 5.0


def _progress(config: pytest.Config, store: Run, report: pytest.TestReport, figures: Any) -> None:
    """A line every few seconds while the suite runs: the test just done (an operation and phase,
    or a scenario), the generated requests sent so far and the findings so far."""
    store.done += 1
    store.last_name = report.nodeid.rsplit("::", 1)[-1]
    if figures:
        name, sent, must, should = figures
        store.sent, store.must, store.should = (
            store.sent + int(sent),
            store.must + int(must),
            store.should + int(should),
        )
        store.last_name = str(name)
    if time.monotonic() - store.last_line >= PROGRESS_EVERY_S:
        _progress_line(config, store)


def _progress_line(config: pytest.Config, store: Run) -> None:
    store.last_line, store.last_line_done = time.monotonic(), store.done
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.ensure_newline()
        terminal.write_line(
            f"workerprobe: {store.done} tests done (last: {store.last_name}); {store.sent} generated requests; "
            f"findings so far: {store.must} MUST, {store.should} SHOULD",
            cyan=True,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not active(config):
        return
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    suite_here = any(_in(Path(item.path), CASES) for item in session.items)
    if (is_worker(config) and suite_here) or contract.FINDINGS.total_requests or contract.FINDINGS.not_run:
        # a worker of the suite's always writes one: an interrupted controller waits for each
        contract.FINDINGS.dump(parts_dir(config) / f"findings-{worker}.json")
    elif contract.FINDINGS.cleanup != (0, 0):
        contract.FINDINGS.dump(parts_dir(config) / f"findings-{worker}.json")
    if is_worker(config) or not run_of(config).collected:
        return  # a worker, or a run of a project's own tests alone: no verdict of the suite's
    interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
    if interrupted:
        _await_workers(parts_dir(config))
    store = run_of(config)
    not_run = [i for i in store.collected if i not in store.finished]
    target = _target()
    header: dict[str, Any] = {
        "target": target.describe() if target else "the embedded default",
        "run_id": run_of(config).run_id,
        "started": run_of(config).started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": workerprobe.__version__,
    }
    if interrupted:
        header["interrupted"] = True
    concluded = ending.conclude(
        parts_dir(config), reports_dir(config), header, store.outcomes, store.errors, not_run if interrupted else []
    )
    if concluded is None:
        return
    verdict, findings = concluded
    run_of(config).verdict, run_of(config).findings = verdict, findings
    if target is not None and session.exitstatus in (0, 1):
        # the suite's verdict (a SHOULD test may fail and the verdict still be PASS), never
        # hiding a failed test of the project the suite runs beside
        session.exitstatus = max(verdict.exit_code, 1 if run_of(config).others_failed else 0)


def _await_workers(parts: Path, patience_s: float = 15.0) -> None:
    """Ctrl-C reached every test process at once: the workers write their evidence as they stop,
    maybe after the controller got here. Wait for each worker's part file (a short while)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        if all((parts / f"findings-{w}.json").exists() for w in _WORKERS):
            return
        time.sleep(0.2)


@pytest.hookimpl(trylast=True)  # after the terminal reporter kept it
def pytest_keyboard_interrupt(excinfo: Any) -> None:
    """Ctrl-C: the partial reports say so; pytest's own notice (a traceback's last line) is not shown."""
    config = _CONTROLLER.get("config")
    terminal = config.pluginmanager.get_plugin("terminalreporter") if config else None
    if terminal is not None and config is not None and active(config):
        terminal._report_keyboardinterrupt = lambda: None  # pytest's private reporter; said by the summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not active(config) or is_worker(config):
        return
    allure_dir = getattr(config.option, "allure_report_dir", None)
    target = _target()
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
    store = run_of(config)
    if store.done > store.last_line_done:
        _progress_line(config, store)  # the last count, however fast the run was
    verdict, findings = store.verdict, store.findings
    if verdict is not None and findings is not None:
        ending.show(terminalreporter, verdict, findings, reports_dir(config))
