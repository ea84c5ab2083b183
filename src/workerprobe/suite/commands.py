"""`workerprobe test`, `workerprobe clean` and `workerprobe report`: the suite's commands (cli.py
parses their arguments and dispatches here)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workerprobe.suite import DEPTHS

__all__ = ["clean", "report", "test"]


def _target_env(args: argparse.Namespace) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if args.url:
        env["CLOUDFLARE_WORKER_URL"] = args.url
    if args.key:
        env["API_KEY"] = args.key
    return env


def test(args: argparse.Namespace) -> int:
    """The suite against the target; with the embedded default and --project-tests (in a checkout),
    the project's own tests too (the load-timing ones after the rest, on their own)."""
    import json
    import os
    import subprocess
    import time
    from pathlib import Path

    from workerprobe.runs import new_run_id
    from workerprobe.suite.cases import SUITE
    from workerprobe.suite.target import TargetError, configured

    root = Path(args.report).resolve()
    run_id = new_run_id()
    reports = root / run_id  # this run's folder; root/latest points at it once the suite is collected
    checkout = Path(__file__).resolve().parents[3]  # src/workerprobe/suite/commands.py -> the checkout
    project = checkout / "tests" / "gateway"  # this repository's own tests, when run from a checkout
    env = _target_env(args)
    env["WORKERPROBE_CONTRACT_EXAMPLES"] = str(DEPTHS[args.depth])
    env["WORKERPROBE_RUN_DEADLINE"] = str(time.time() + args.deadline)
    env["WORKERPROBE_REQUEST_DEADLINE_S"] = str(args.request_deadline)
    env["WORKERPROBE_MAX_ANSWER_BYTES"] = str(args.max_answer_bytes)
    bounded = ("CLOUDFLARE_WORKER_URL", "API_KEY", "WORKERPROBE_REQUEST_DEADLINE_S", "WORKERPROBE_MAX_ANSWER_BYTES")
    os.environ.update({k: v for k, v in env.items() if k in bounded})
    from workerprobe.suite import preflight

    for warning in preflight.env_warnings(Path(".env"), env):
        print(warning, flush=True)
    try:
        chosen = configured()
    except TargetError as exc:
        print(f"workerprobe test: UNVERIFIED ({exc}); exit 2")
        return 2
    deployed = chosen is not None
    env["WORKERPROBE_PREFLIGHT"] = "done"
    if chosen is not None:
        result = preflight.check(chosen)
        print(result.line, flush=True)
        if not result.ok:
            print("workerprobe test: UNVERIFIED (pre-flight failed; no test was run); exit 2")
            return 2
    own = not deployed and args.project_tests and project.is_dir()
    if args.project_tests and not own and not deployed:
        print("workerprobe test: --project-tests needs a checkout of the repository; running the suite only")
    skipped = ["--ignore", str(checkout / "tests" / "load"), "--ignore", str(checkout / "tests" / "ci")]  # their own
    paths = [str(checkout / "tests"), *skipped, *SUITE] if own else list(SUITE)
    pytest = [sys.executable, "-m", "pytest", "--workerprobe", "-n", args.processes]
    pytest += [f"--max-neurons={args.max_neurons}", f"--workerprobe-reports={root}", f"--workerprobe-run-id={run_id}"]
    pytest += [f"--alluredir={reports}/allure-results", *_junit(args.pytest_args, reports), *args.pytest_args]
    cwd = checkout if own else Path.cwd()
    try:
        code = _bounded_run([*pytest, *paths], cwd, env, args.deadline + _GRACE_S)
    except KeyboardInterrupt:
        _leftovers(chosen, run_id)
        written = "say what ran and what did not" if (reports / "summary.md").exists() else "were not written"
        print(f"\nworkerprobe test: UNVERIFIED (interrupted; the reports in {reports} {written}); exit 2")
        _step_summary(reports)
        return 2
    if code is None:
        _leftovers(chosen, run_id)
        print(
            f"workerprobe test: UNVERIFIED (the run did not end within its deadline of {args.deadline:g} s and "
            f"{_GRACE_S:g} s of grace; reports in {reports} are partial or missing); exit 2"
        )
        return 2
    loaded = 0
    if own and code in (0, 1):
        load = [
            sys.executable,
            "-m",
            "pytest",
            str(checkout / "tests" / "load"),
            f"--alluredir={reports}/allure-results",
        ]
        loaded = subprocess.run([*load, *args.pytest_args], cwd=checkout, env=env, check=False).returncode
        code = max(code, 0 if loaded == 5 else loaded)
    summary = reports / "summary.json"
    if summary.exists() and code in (0, 1, 2):
        verdict = json.loads(summary.read_text())
        print(f"workerprobe test: {_final(verdict, code, loaded_failed=own and loaded not in (0, 5))}; exit {code}")
        print(f"reports: {reports} (also {root / 'latest'})")
    _step_summary(reports)
    return code


def _leftovers(target: Any, run_id: str) -> None:
    """A run stopped from outside: its test processes may have been ended before they deleted what
    they created. Delete what is left of this run's objects (its ledgers, its tagged objects; never
    another run's, which may be under way on the same target)."""
    if target is None:
        return  # the embedded default ended with the run
    from workerprobe.suite.ledger import clean

    try:
        deleted, left = clean(target.root, target.api_key, run_id)
    except Exception as exc:  # noqa: BLE001 - the target may be what failed; say so, never a traceback
        print(f"workerprobe test: the run's objects could not be deleted ({exc}); `workerprobe clean` will try again")
        return
    if deleted or left:
        print(f"objects this run created on the target: {deleted} deleted after it stopped, {left} left")


def _junit(pytest_args: list[str], reports: object) -> list[str]:
    """A JUnit XML file in the run's folder, unless the options after -- ask for one elsewhere."""
    if any(a.startswith("--junitxml") or a.startswith("--junit-xml") for a in pytest_args):
        return []
    return [f"--junitxml={reports}/junit.xml", "-o", "junit_suite_name=workerprobe"]


def _step_summary(reports: Any) -> None:
    """On GitHub Actions, the run's summary.md appended to the job's step summary (the links to
    findings.md pointed at the uploaded reports' file names)."""
    import os
    import re
    from pathlib import Path

    target, summary = os.environ.get("GITHUB_STEP_SUMMARY"), Path(reports) / "summary.md"
    if not target or not summary.exists():
        return
    text = re.sub(r"\[details\]\(findings\.md#cause-(\d+)\)", r"(findings.md, cause \1)", summary.read_text())
    with open(target, "a", encoding="utf-8") as out:
        out.write(text + "\n")


_WORDS = {0: "PASS", 1: "FAIL", 2: "UNVERIFIED"}


def _final(verdict: dict[str, object], code: int, loaded_failed: bool) -> str:
    """The last line's verdict, which always agrees with the exit code: where the run's exit
    differs from the suite's verdict, both are said and why."""
    said = f"{verdict['verdict']} ({verdict['reason']})"
    if verdict.get("exit_code") == code:
        return said
    why = (
        "the project's load-timing tests failed"
        if loaded_failed
        else f"pytest ended with exit {code}: a test outside the verdict failed or could not run (see above)"
    )
    return f"{_WORDS[code]} (the suite alone: {said}; {why})"


_GRACE_S = 120.0  # past the run's deadline: the tests under way end, the reports are written


class _Terminated(Exception):
    """SIGTERM (a CI's cancel, `timeout`): handled as Ctrl-C is."""


def _bounded_run(command: list[str], cwd: object, env: dict[str, str], timeout: float) -> int | None:
    """Run the test process in a process group of its own; past `timeout`, interrupt it (then kill
    it): None. Whatever way it ends, nothing of its group outlives it (an xdist worker stuck in a
    read would go on alone), and a SIGTERM to this process ends the group as Ctrl-C does."""
    import os
    import signal
    import subprocess

    def _terminated(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, _terminated)
    # Ctrl-C is this command's whatever it inherited: a shell's background job, a CI runner or an
    # xdist worker starts it with SIGINT ignored, which the test processes would inherit too (an
    # ignored signal stays ignored across exec; a handled one is reset to the default).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)  # type: ignore[call-overload]
    try:
        return int(process.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
        _interrupt(process)
        return None
    except (KeyboardInterrupt, _Terminated):
        _interrupt(process)
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what is left of the group: no one waits for it
        except (ProcessLookupError, PermissionError):
            pass


def _interrupt(process: Any) -> None:
    """SIGINT to the group (pytest writes what it has), SIGKILL past 30 s."""
    import os
    import signal
    import subprocess

    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def clean(args: argparse.Namespace) -> int:
    import os

    from workerprobe.suite.ledger import clean
    from workerprobe.suite.target import TargetError, configured

    os.environ.update({k: v for k, v in _target_env(args).items() if k in ("CLOUDFLARE_WORKER_URL", "API_KEY")})
    try:
        target = configured()
    except TargetError as exc:
        print(f"workerprobe clean: {exc}", file=sys.stderr)
        return 2
    if target is None:
        print("workerprobe clean: no target (give a URL, or set CLOUDFLARE_WORKER_URL and API_KEY)", file=sys.stderr)
        return 2
    deleted, left = clean(target.root, target.api_key)
    print(f"workerprobe clean: {deleted} object(s) deleted from {target.v1}, {left} could not be")
    return 0 if left == 0 else 1


ALLURE = "allure@3.18.0"  # Allure 3, from npm (no Java)


def report(args: argparse.Namespace) -> int:
    """Build the Allure HTML of the newest suite run (npx, Node.js): one self-contained file, with
    MUST and SHOULD categories, that opens from disk as a CI artifact is opened; and serve the
    newest run's reports on 127.0.0.1 (or, with --no-serve, print their paths)."""
    import functools
    import http.server
    import shutil
    import subprocess
    from importlib.resources import files
    from pathlib import Path

    from workerprobe.runs import latest

    root = Path(args.dir).resolve()
    suite = latest(root, "allure-results") or latest(root, "summary.md")
    load = latest(root, "load/index.html")
    pages: list[tuple[str, Path]] = []
    results = suite / "allure-results" if suite else None
    if results is not None and results.is_dir() and any(results.iterdir()) and not args.no_build:
        npx = shutil.which("npx")
        if npx is None:
            print("workerprobe report: Allure needs Node.js and npm (apt-get install nodejs npm); skipped it")
        else:
            config = str(files("workerprobe.suite") / "spec" / "allurerc.json")
            built = results.parent / "allure-report"
            command = [npx, "--yes", ALLURE, "generate", str(results), "-o", str(built), "-c", config]
            done = subprocess.run(command, check=False, cwd=results.parent)
            if done.returncode != 0:
                print(f"workerprobe report: allure generate failed (exit {done.returncode})", file=sys.stderr)
                return 1
    if suite is not None:
        if (suite / "allure-report" / "index.html").exists():
            built = suite / "allure-report" / "index.html"
            pages.append(("the suite's Allure report (one file: opens from disk too)", built))
        for name, file in (("the summary", "summary.md"), ("the findings", "findings.md")):
            if (suite / file).exists():
                pages.append((name, suite / file))
        if (suite / "conformance.md").exists():
            pages.append(("the conformance matrix", suite / "conformance.md"))
    if load is not None:
        pages.append(("the last load run", load / "load/index.html"))
        pages.append(("Locust's own report of it", load / "load/locust.html"))
    if not pages:
        print(f"workerprobe report: nothing in {root} yet; run `workerprobe test` or `workerprobe load` first")
        return 2
    if args.no_serve:
        for name, path in pages:
            print(f"{name}: {path}")
        return 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        port = server.server_address[1]
        for name, path in pages:
            print(f"{name}: http://127.0.0.1:{port}/{path.relative_to(root).as_posix()}", flush=True)
        print("serving on 127.0.0.1 only; Ctrl-C stops", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
