"""The suite's session fixtures: the target under test, the run's id, its one neuron budget and its
ledger of what it created (registered by the plugin when the suite is on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workerprobe.suite import contract, shares
from workerprobe.suite.budget import Budget
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.runstate import parts_dir, run_of
from workerprobe.suite.target import Target, configured, embedded

__all__ = ["budget", "ledger", "run_id", "target"]


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
    return run_of(request.config).run_id


@pytest.fixture(scope="session")
def budget(request: pytest.FixtureRequest, target: Target) -> Budget | None:
    """The run's one neuron budget (None when no neuron is real)."""
    if target.emulated:
        return None
    made = Budget(parts_dir(request.config) / "budget.sqlite3", request.config.getoption("--max-neurons"))
    for pool, tests in request.config.stash.get(shares.PLAN, {}).items():
        made.plan(pool, dict(tests))
    request.config.stash[shares.BUDGET] = made
    return made


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
