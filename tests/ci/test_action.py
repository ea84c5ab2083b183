"""The GitHub Action (action.yml) as a runner runs it: its `run` step's script, with the inputs
mapped to its environment exactly as action.yml maps them, in a fresh folder, installing the suite
from this checkout into a fresh venv; against the embedded default (with a load run) and against a
target nobody here wrote the code of (Cloudflare's OpenAI-compatible `/ai/v1`, as the emulator
serves it). `act` would need container images from a registry, which this machine cannot reach.

    make action-check        (in CI)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from workerprobe.procs import serve

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
SECRETS = ("CLOUDFLARE_WORKER_URL", "API_KEY", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "WORKERPROBE_TARGET")


def _step_env(inputs: dict[str, str]) -> dict[str, str]:
    """The `run` step's environment, as the runner renders `${{ inputs.x }}` (a default where the
    workflow gives nothing)."""
    values = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()} | inputs
    unknown = set(inputs) - set(ACTION["inputs"])
    assert not unknown, f"not inputs of action.yml: {unknown}"
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "run"]
    rendered = {}
    for name, expression in step["env"].items():
        found = re.fullmatch(r"\$\{\{ inputs\.([a-z0-9-]+) \}\}", expression)
        assert found, expression
        rendered[name] = values[found.group(1)]
    return rendered


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runner-temp")  # one venv for the module, as a cached runner would keep


def _run_action(workspace: Path, runner_temp: Path, inputs: dict[str, str]) -> tuple[int, dict[str, str], str]:
    workspace.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SECRETS
        and not k.startswith("VIRTUAL_ENV")
        and (not k.startswith("WORKERPROBE_") or k.endswith("_DIR"))
    }
    env |= _step_env(inputs)
    env |= {
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_OUTPUT": str(workspace / "github-output"),
        "GITHUB_STEP_SUMMARY": str(workspace / "step-summary.md"),
        "RUNNER_TEMP": str(runner_temp),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "action" / "run.sh")],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    return done.returncode, _outputs(workspace / "github-output"), done.stdout + done.stderr


def test_the_action_declares_what_its_script_reads_and_writes() -> None:
    script = (ROOT / "action" / "run.sh").read_text()
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "run"]
    read = set(re.findall(r"\$\{?(WP_[A-Z0-9_]+)", script)) - {"WP_VENV", "WP_PYTHON"}
    assert read == set(step["env"]), read ^ set(step["env"])
    written = set(re.findall(r'echo "([a-z-]+)=', script))
    declared = {re.search(r"outputs\.([a-z-]+)", o["value"]).group(1) for o in ACTION["outputs"].values()}  # type: ignore[union-attr]
    assert written == declared == set(ACTION["outputs"]), (written, declared)


def test_the_action_against_the_embedded_default_with_a_load_run(tmp_path: Path, runner_temp: Path) -> None:
    inputs = {"load-profile": "steady", "load-users": "2", "load-seconds": "5", "max-error-rate": "1"}
    code, outputs, said = _run_action(tmp_path / "workspace", runner_temp, inputs)
    assert code == 0, said[-4000:]
    assert outputs["verdict"] == "PASS" and outputs["exit-code"] == "0", outputs
    run = Path(outputs["report-dir"])
    assert run.parent == (tmp_path / "workspace" / "workerprobe-reports").resolve()
    assert (run / "junit.xml").exists() and json.loads((run / "summary.json").read_text())["verdict"] == "PASS"
    step = (tmp_path / "workspace" / "step-summary.md").read_text()
    assert "# workerprobe: PASS (exit 0)" in step and "## workerprobe load: steady" in step
    load = tmp_path / "workspace" / "workerprobe-reports" / "latest" / "load" / "summary.json"
    assert json.loads(load.read_text())["requests"] > 0
    # the progress lines count what the test processes sent (a worker's report reaches the controller whole)
    assert re.search(r"workerprobe: \d+ tests done \(last: [^)]*\); [1-9]\d* generated requests", said), said[-3000:]
    # the README's "what success looks like" is what this run printed (numbers and paths aside)
    readme = (ROOT / "README.md").read_text()
    sample = readme.split("**What success looks like**", 1)[1].split("```", 2)[1]
    printed = {_shape(line) for line in said.splitlines()}
    assert [line for line in sample.strip().splitlines() if _shape(line) not in printed] == []


def _shape(line: str) -> str:
    return re.sub(r"\d+", "N", re.sub(r"\(/?[^()]*reports[^()]*\)", "(PATHS)", line.strip()))


@pytest.fixture
def ai_v1() -> Iterator[tuple[str, str]]:
    token = secrets.token_hex(8)
    with serve(["emulator"], env={"CF_API_TOKEN": token}) as emulator:
        yield f"{emulator.url}/client/v4/accounts/workerprobe/ai/v1", token


def test_the_action_against_a_foreign_target(tmp_path: Path, runner_temp: Path, ai_v1: tuple[str, str]) -> None:
    url, key = ai_v1
    code, outputs, said = _run_action(tmp_path / "workspace", runner_temp, {"url": url, "key": key})
    summary = json.loads((Path(outputs["report-dir"]) / "summary.json").read_text())
    # whatever the target's verdict, the step's result, its outputs and the reports agree
    assert code in (0, 1) and str(code) == outputs["exit-code"] == str(summary["exit_code"]), said[-4000:]
    assert outputs["verdict"] == summary["verdict"] and summary["target"].startswith(url.rsplit("/v1", 1)[0])
    assert key not in said  # the key reaches the suite by the environment, never a printed command line
    step = (tmp_path / "workspace" / "step-summary.md").read_text()
    assert step.startswith(f"# workerprobe: {summary['verdict']} (exit {code})")


def test_a_url_without_a_key_stops_the_action_with_exit_2(tmp_path: Path, runner_temp: Path) -> None:
    code, outputs, said = _run_action(tmp_path / "workspace", runner_temp, {"url": "https://w.example/v1"})
    assert code == 2 and outputs["exit-code"] == "2" and outputs["verdict"] == "UNVERIFIED"
    assert "the suite needs both" in said
