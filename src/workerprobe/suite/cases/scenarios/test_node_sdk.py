"""The official OpenAI Node SDK against the target, one test per endpoint family
(node/check.mjs beside this file). Not run, with the reason, where Node or npm is absent."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workerprobe.paths import cache_dir
from workerprobe.suite import bounds
from workerprobe.suite.budget import Budget
from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL, EMBEDDING_MODEL, hold_or_skip
from workerprobe.suite.target import Target

pytestmark = [pytest.mark.must, pytest.mark.client("node")]

SCRIPT = Path(__file__).resolve().parent / "node"
FAMILIES = ("models", "chat", "embeddings", "responses", "conversations", "assistants", "threads", "runs")
# Worst case of the script's generating calls (four chat calls and two runs of 16 tokens, five
# responses of 16 and 32 tokens).
NODE_NEURONS = 20.0


def _installed() -> Path:
    """The script with its dependencies installed in the state directory (npm, once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed (apt-get install nodejs npm)")
    home = cache_dir() / "node-sdk"
    home.mkdir(parents=True, exist_ok=True)
    wanted = (SCRIPT / "package.json").read_text()
    # One process installs while the others wait (two npm installs in one folder break each other).
    with (home.parent / "node-sdk.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = (home / "package.json").read_text() if (home / "package.json").exists() else ""
        if not (home / "node_modules" / "openai").is_dir() or current != wanted:
            (home / "package.json").write_text(wanted)
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--silent"],
                cwd=home,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                pytest.skip(f"npm install of the openai package failed: {done.stderr.strip()[-200:]}")
        shutil.copy(SCRIPT / "check.mjs", home / "check.mjs")
    return home


@pytest.fixture(scope="module")
def node_results(target: Target, budget: Budget | None, run_id: str) -> dict[str, dict[str, object]]:
    home = _installed()
    hold = hold_or_skip(budget, NODE_NEURONS)
    env = {
        **os.environ,
        "OPENAI_BASE_URL": target.v1,
        "OPENAI_API_KEY": target.api_key,
        "WORKERPROBE_CHAT_MODEL": CHAT_MODEL,
        "WORKERPROBE_EMBEDDING_MODEL": EMBEDDING_MODEL,
        "WORKERPROBE_RUN": run_id,
    }
    try:
        # Bounded as every answer of the suite: a whole-run wall clock, and the memory node may take.
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --max-old-space-size=512".strip()
        limit = min(600.0, max(bounds.remaining(), 1.0))
        try:
            done = subprocess.run(
                ["node", "check.mjs", *FAMILIES], cwd=home, env=env, capture_output=True, text=True, timeout=limit
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the Node SDK script did not end within {limit:g} s (the target's answers never ended?)")
    finally:
        if budget is not None and hold is not None:
            budget.charge(hold, NODE_NEURONS, worst_case=NODE_NEURONS)
    results = {}
    for line in done.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        results[str(entry["family"])] = entry
    if not results:
        pytest.fail(f"the Node SDK script printed nothing: {done.stderr.strip()[-400:]}")
    return results


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.family(f)) for f in FAMILIES])
def test_node_sdk(family: str, node_results: dict[str, dict[str, object]]) -> None:
    result = node_results.get(family)
    assert result is not None, f"the Node SDK script gave no result for {family}"
    assert result["ok"], result.get("error")
