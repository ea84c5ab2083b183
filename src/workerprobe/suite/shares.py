"""Who shares the run's budget: the members of the contract pool are the operations whose generated
cases may generate, each with the number of tests this run selected for it. Every test process
plans the same from its collection; a test's end is counted against its member, so that a member
whose tests have all ended gives its unused part to the others (`budget.Budget.plan`, `finished`).

The scenarios' pool is one member, all the scenarios: its tests are few, each holds a known worst
case while it runs and is charged what it used, and they run first, so a scenario is not run only
when the pool itself is spent (measured against the reference gateway at the default 300 neurons, a
part per family left the costliest family, runs, short while the pool still had a quarter free).
Once every scenario has ended, what the pool did not use goes to the contract cases."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from workerprobe.suite import contract, operations
from workerprobe.suite.budget import Budget
from workerprobe.suite.cases import CONTRACT, SCENARIOS

__all__ = ["BUDGET", "PLAN", "SCENARIO_HOLD", "family_of", "finished", "level_of", "member_of", "plan"]

# What one scenario holds while it runs (about four short calls); it is charged what it used.
SCENARIO_HOLD = 15.0
PLAN = pytest.StashKey[dict[str, Counter[str]]]()
BUDGET = pytest.StashKey[Budget]()


def family_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("family")
    return str(marker.args[0]) if marker else "chat"


def level_of(item: pytest.Item) -> str:
    """MUST or SHOULD: the closest of the `must` and `should` marks (a test's own `should` over its
    module's `must`)."""
    marked = next((m.name for m in item.iter_markers() if m.name in ("must", "should")), "should")
    return marked.upper()


def member_of(item: pytest.Item) -> tuple[str, str] | None:
    """(pool, member) of a test that may spend, None for one that may not."""
    path = Path(str(item.path))
    if SCENARIOS in path.parents:
        return "scenarios", "scenarios"
    label = getattr(item, "operation_label", None)
    if label is not None and path == CONTRACT / "test_schema.py":
        found = operations.load().get(label)
        name = (getattr(item, "originalname", "") or "").removeprefix("test_")
        if found is not None and found.generates is not None and name in contract.PHASES:
            return "contract", label
        return None
    return None


def plan(items: list[pytest.Item]) -> dict[str, Counter[str]]:
    planned: dict[str, Counter[str]] = {"contract": Counter(), "scenarios": Counter()}
    for item in items:
        member = member_of(item)
        if member is not None:
            planned[member[0]][member[1]] += 1
    return planned


def finished(item: pytest.Item) -> None:
    """The test ended: counted against its member, in this run's budget (if it has one)."""
    budget = item.config.stash.get(BUDGET, None)
    member = member_of(item)
    if budget is not None and member is not None:
        budget.finished(*member)
