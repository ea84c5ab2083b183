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

    from workerprobe.suite.cases import SUITE
    from workerprobe.suite.target import TargetError, configured

    reports = Path(args.report).resolve()
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
    from workerprobe.suite.reports import clear_reports

    clear_reports(reports)
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
    paths = [str(checkout / "tests"), "--ignore", str(checkout / "tests" / "load"), *SUITE] if own else list(SUITE)
    pytest = [sys.executable, "-m", "pytest", "--workerprobe", "-n", args.processes]
    pytest += [f"--max-neurons={args.max_neurons}", f"--workerprobe-reports={reports}"]
    # what the repository's pyproject.toml sets, for an installed suite run from anywhere
    pytest += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
    pytest += [f"--alluredir={reports}/allure-results", "--clean-alluredir", *args.pytest_args]
    cwd = checkout if own else Path.cwd()
    try:
        code = _bounded_run([*pytest, *paths], cwd, env, args.deadline + _GRACE_S)
    except KeyboardInterrupt:
        written = "hold what ran until then" if (reports / "summary.md").exists() else "were not written"
        print(f"\nworkerprobe test: UNVERIFIED (interrupted; the reports in {reports} {written}); exit 2")
        return 2
    if code is None:
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
    return code


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
    """Build the Allure HTML of the last suite run (npx, Node.js) and serve the reports on
    127.0.0.1: Allure's page needs an HTTP server (opened as a file it never loads its data)."""
    import functools
    import http.server
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(args.dir).resolve()
    results, built = root / "allure-results", root / "allure-report"
    pages: list[tuple[str, str]] = []
    if results.is_dir() and any(results.iterdir()) and not args.no_build:
        npx = shutil.which("npx")
        if npx is None:
            print("workerprobe report: Allure needs Node.js and npm (apt-get install nodejs npm); skipped it")
        else:
            done = subprocess.run([npx, "--yes", ALLURE, "generate", str(results), "-o", str(built)], check=False)
            if done.returncode != 0:
                print(f"workerprobe report: allure generate failed (exit {done.returncode})", file=sys.stderr)
                return 1
    if (built / "index.html").exists():
        pages.append(("the suite's Allure report", "allure-report/index.html"))
    if (root / "load" / "index.html").exists():
        pages.append(("the last load run", "load/index.html"))
        pages.append(("Locust's own report of it", "load/locust.html"))
    for name, path in (("the conformance matrix", "conformance.md"), ("the findings", "findings.md")):
        if (root / path).exists():
            pages.append((name, path))
    if not pages:
        print(f"workerprobe report: nothing in {root} yet; run `workerprobe test` or `workerprobe load` first")
        return 2
    if args.no_serve:
        for name, path in pages:
            print(f"{name}: {root / path}")
        return 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        port = server.server_address[1]
        for name, path in pages:
            print(f"{name}: http://127.0.0.1:{port}/{path}", flush=True)
        print("serving on 127.0.0.1 only; Ctrl-C stops", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
