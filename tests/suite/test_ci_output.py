"""What a CI reads from a run: a folder per run (`reports/<run id>/`, `reports/latest`), a JUnit file
whose cases carry the family, the level and the finding, the step summary on GitHub, a summary.json
that its published schema accepts, Allure results with the level and the finding's curl, and a
Ctrl-C that ends with a partial summary and no traceback. Real runs of `workerprobe test` (the
embedded default, one with a seeded defect) and `workerprobe load`, in a folder of the test's own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

# as a user's shell has it: no target, and none of the run-control variables `workerprobe test` gives
# its own processes (these tests may run inside one: `make test`)
ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("CLOUDFLARE_WORKER_URL", "API_KEY", "GITHUB_STEP_SUMMARY")
    and (not k.startswith("WORKERPROBE_") or k.endswith("_DIR"))
}
ENV["WORKERPROBE_TARGET"] = "embedded"
WORKERPROBE = [sys.executable, "-m", "workerprobe"]


def _schema(package: str, name: str) -> dict[str, object]:
    return json.loads((files(package) / name).read_text())  # type: ignore[no-any-return]


def _test(cwd: Path, *extra: str, defects: str = "[]", **env: str) -> subprocess.CompletedProcess[str]:
    command = [*WORKERPROBE, "test", "--processes", "1", "--", "-k", "test_examples and chat", *extra]
    environ = {**ENV, "WORKERPROBE_SELFTEST_DEFECTS": defects, **env}
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[subprocess.CompletedProcess[str]]]:
    """A run against a gateway whose chat choices lack `index` (a MUST), then a clean one."""
    cwd = tmp_path_factory.mktemp("project")
    first = _test(cwd, defects='["choices_without_index"]', GITHUB_STEP_SUMMARY=str(cwd / "step-summary.md"))
    second = _test(cwd)
    return cwd, [first, second]


def test_each_run_has_its_own_folder_and_latest_points_at_the_newest(two_runs: tuple[Path, list]) -> None:
    cwd, (first, second) = two_runs
    assert (first.returncode, second.returncode) == (1, 0), first.stdout[-2000:] + second.stdout[-2000:]
    runs = sorted(p for p in (cwd / "reports").glob("wp-*"))
    assert len(runs) == 2
    assert (cwd / "reports" / "latest").resolve() == runs[1]
    verdicts = [json.loads((run / "summary.json").read_text()) for run in runs]
    assert [v["verdict"] for v in verdicts] == ["FAIL", "PASS"]
    assert [v["run_id"] for v in verdicts] == [run.name for run in runs]
    # each run's Allure results apart: the second's are not retries of the first's
    first_results = {json.loads(p.read_text())["uuid"] for p in (runs[0] / "allure-results").glob("*-result.json")}
    second_results = {json.loads(p.read_text())["uuid"] for p in (runs[1] / "allure-results").glob("*-result.json")}
    assert first_results and second_results and not first_results & second_results
    assert f"reports: {runs[0]}" in first.stdout


def test_junit_names_the_family_the_level_and_the_finding(two_runs: tuple[Path, list]) -> None:
    cwd, _ = two_runs
    run = sorted((cwd / "reports").glob("wp-*"))[0]
    cases = ET.parse(run / "junit.xml").getroot().iter("testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1, [c.get("name") for c in failed]
    case = failed[0]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props == {
        "operation": "POST /v1/chat/completions",
        "phase": "examples",
        "family": "chat",
        "level": "MUST",
    }
    failure = case.find("failure")
    assert failure is not None and '"index" is a required property' in (failure.get("message") or "")


def test_the_summary_is_what_its_schema_says_and_reaches_the_step_summary(two_runs: tuple[Path, list]) -> None:
    cwd, _ = two_runs
    schema = _schema("workerprobe.suite", "spec/summary.schema.json")
    for run in sorted((cwd / "reports").glob("wp-*")):
        jsonschema.validate(json.loads((run / "summary.json").read_text()), schema)
    step = (cwd / "step-summary.md").read_text()
    assert step.startswith("# workerprobe: FAIL (exit 1)") and "(findings.md, cause 1)" in step
    with pytest.raises(jsonschema.ValidationError):  # the schema is not a rubber stamp
        jsonschema.validate({"schema_version": 1, "verdict": "GREEN"}, schema)


def test_a_failed_contract_test_carries_its_level_and_curl_in_allure(two_runs: tuple[Path, list]) -> None:
    cwd, _ = two_runs
    run = sorted((cwd / "reports").glob("wp-*"))[0]
    results = [json.loads(p.read_text()) for p in (run / "allure-results").glob("*-result.json")]
    (failed,) = [r for r in results if r["status"] == "failed"]
    assert {"name": "level", "value": "MUST"} in failed["labels"]
    (attachment,) = [a for a in failed.get("attachments", []) if a["name"].endswith(": curl")]
    curl = (run / "allure-results" / attachment["source"]).read_text()
    assert curl.startswith("curl ") and "/v1/chat/completions" in curl and "$API_KEY" in curl


def test_a_load_run_has_its_folder_and_a_summary_its_schema_accepts(tmp_path: Path) -> None:
    command = [*WORKERPROBE, "load", "--profile", "steady", "--users", "1", "--seconds", "2", "--allow-busy-generator"]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "reports" / "latest" / "load" / "summary.json").read_text())
    jsonschema.validate(summary, _schema("workerprobe.loadkit", "summary.schema.json"))
    assert summary["requests"] > 0


def _interrupt(cwd: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`workerprobe test`, stopped by Ctrl-C (SIGINT to it, as a terminal sends) at its first progress
    line: some tests ran, most have not."""
    with subprocess.Popen(
        [*WORKERPROBE, "test", "--processes", "2", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # the first progress line: some tests ran, most have not
            seen.append(line)
            if "tests done" in line:
                process.send_signal(signal.SIGINT)
                break
        rest = process.stdout.read()
        code = process.wait(timeout=300)
    return code, "".join(seen) + rest


def test_ctrl_c_ends_with_a_partial_summary_and_no_traceback(tmp_path: Path) -> None:
    code, output = _interrupt(tmp_path, [], ENV)
    assert code == 2, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert "workerprobe test: UNVERIFIED (interrupted" in output
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["verdict"] == "UNVERIFIED"
    assert summary["not_checked"]["tests_not_run_when_interrupted"]
    assert "did not run" in (tmp_path / "reports" / "latest" / "summary.md").read_text()


def test_ctrl_c_leaves_nothing_on_a_deployed_target(tmp_path: Path) -> None:
    """Against a target that outlives the run (a gateway and emulator started here, given by URL
    as a deployed Worker is): after Ctrl-C, `workerprobe clean` finds nothing of the run's left."""
    from workerprobe.suite.target import embedded

    env = {**ENV, "WORKERPROBE_STATE_DIR": str(tmp_path / "state")}
    env.pop("WORKERPROBE_TARGET")
    with embedded(tmp_path / "gateway.sqlite3") as target:
        env |= {"API_KEY": target.api_key, "WORKERPROBE_TARGET_UPSTREAM": "emulator"}
        code, output = _interrupt(tmp_path, [target.v1], env)
        assert code == 2 and "Traceback" not in output, output[-3000:]
        clean = subprocess.run(
            [*WORKERPROBE, "clean", target.v1], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    assert clean.returncode == 0 and "workerprobe clean: 0 object(s) deleted" in clean.stdout, clean.stdout


def test_the_plugin_in_another_project_writes_its_run_folder_and_verdict(tmp_path: Path) -> None:
    """`pytest -p workerprobe --workerprobe` in a project of its own (pytest's default settings,
    pytest-asyncio strict, xdist): pytest names the suite's tests relative to the suite's folder,
    not the project's rootdir; the run's folder, `latest` and the verdict are still the suite's."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "my-worker-tests"\nversion = "0"\n')
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    assert True\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "workerprobe", "--workerprobe", "-n", "2", "-q",
         "-k", "test_mine or (test_chat and test_plain)"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "PASS" and summary["scenarios"] == {"passed": 1}, summary
    assert "workerprobe verdict: PASS" in done.stdout
