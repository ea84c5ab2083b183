"""Who shares the run's budget: the members of its pools are the operations whose generated cases
may generate (the contract pool) and the families of the SDK scenarios (the scenarios pool), each
with the number of tests this run selected for it. Every test process plans the same from its
collection; a test's end is counted against its member, so that a member whose tests have all
ended gives its unused part to the others (`budget.Budget.plan`, `finished`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from workerprobe.suite import contract, operations
from workerprobe.suite.budget import Budget
from workerprobe.suite.cases import CONTRACT, SCENARIOS

__all__ = ["BUDGET", "PLAN", "family_of", "finished", "member_of", "plan"]

PLAN = pytest.StashKey[dict[str, Counter[str]]]()
BUDGET = pytest.StashKey[Budget]()


def family_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("family")
    return str(marker.args[0]) if marker else "chat"


def member_of(item: pytest.Item) -> tuple[str, str] | None:
    """(pool, member) of a test that may spend, None for one that may not."""
    path = Path(str(item.path))
    label = getattr(item, "operation_label", None)
    if label is not None and path == CONTRACT / "test_schema.py":
        found = operations.load().get(label)
        name = (getattr(item, "originalname", "") or "").removeprefix("test_")
        if found is not None and found.generates is not None and name in contract.PHASES:
            return "contract", label
        return None
    if path.is_relative_to(SCENARIOS):
        return "scenarios", family_of(item)
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
