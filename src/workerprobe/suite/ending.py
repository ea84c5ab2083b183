"""The end of a run, in the controlling process: the test processes' evidence merged, the matrix,
the verdict and the reports written, what the run cost, and what the terminal shows last."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from workerprobe.suite import contract
from workerprobe.suite.budget import Budget
from workerprobe.suite.conformance import write_matrix
from workerprobe.suite.findings import Findings, merge
from workerprobe.suite.reports import FIRST_SCREEN, retired_note, write
from workerprobe.suite.verdict import Outcome, Verdict, distinct, judge

__all__ = ["conclude", "cost", "show"]


def cost(budget_file: Path) -> dict[str, Any]:
    """What the run spent on a deployed target ({} when nothing was real)."""
    if not budget_file.exists():
        return {}
    budget = Budget(budget_file, 0)
    spend = budget.spend()
    return {
        "max_neurons": spend.max_neurons,
        "spent_neurons": round(spend.spent, 2),
        "by_contract_cases": round(budget.spend("contract").spent, 2),
        "by_scenarios": round(budget.spend("scenarios").spent, 2),
        "of_which_worst_case": round(spend.worst_case, 2),
        "still_held": round(spend.held, 2),
        "calls": spend.calls,
        "refused_for_budget": spend.refused,
    }


def conclude(
    parts_dir: Path,
    reports: Path,
    header: dict[str, Any],
    outcomes: list[Outcome],
    errors: int,
    not_run: list[str] | None = None,
) -> tuple[Verdict, Findings] | None:
    """The verdict and the evidence of the run whose part files are in `parts_dir` (removed after),
    its reports written to `reports`; None when no test of the suite ran. `not_run`: the tests an
    interrupted run did not reach."""
    parts = sorted(parts_dir.glob("findings-*.json"))
    spent = cost(parts_dir / "budget.sqlite3")
    if not parts and not outcomes:
        return None
    findings = merge(parts)
    operations = contract.operations()
    write_matrix(
        findings,
        operations,
        reports,
        f"Target: {header['target']}; run {header['run_id']}, "
        f"{header['started']} to {header['finished']}, workerprobe {header['version']}",
    )
    verdict = judge(findings, outcomes, spent, errors=errors, operations=operations, not_run=not_run)
    shutil.rmtree(parts_dir, ignore_errors=True)
    write(reports, header, verdict, findings, outcomes, not_run)
    return verdict, findings


def show(terminal: pytest.TerminalReporter, verdict: Verdict, findings: Findings, reports: Path) -> None:
    """The run's last lines: what was sent and found, what it cost, the readiness table, the causes
    to fix first, the verdict."""
    line = terminal.write_line
    line("")
    line(
        f"contract requests sent by generated cases: {findings.total_requests}; distinct findings: "
        f"{distinct(list(findings.groups.values()))} ({reports / 'summary.md'}, {reports / 'findings.md'})"
    )
    if verdict.cost:
        c = verdict.cost
        line(
            f"neurons spent on the deployed target: {c['spent_neurons']} of {c['max_neurons']:g} "
            f"(contract cases {c['by_contract_cases']}, scenarios {c['by_scenarios']}; "
            f"{c['of_which_worst_case']} of it charged at the worst case, no usage reported); "
            f"calls not made for the budget: {c['refused_for_budget']}"
        )
    if findings.cleanup != (0, 0):
        deleted, left = findings.cleanup
        line(f"objects this run created on the target: {deleted} deleted, {left} left (workerprobe clean)")
    width = max(len(f) for f in verdict.table)
    line(f"{'family':{width}}  official Python SDK / official Node SDK")
    for family, row in verdict.table.items():
        line(f"{family:{width}}  {row['python']} / {row['node']}")
    note = retired_note(verdict)
    if note:
        line(note)
    for n, cause in enumerate(verdict.causes[:FIRST_SCREEN], 1):
        where = f"{len(cause.operations)} operation(s), {cause.responses} response(s)" if cause.operations else ""
        if cause.scenarios:
            where = ", ".join(p for p in (where, f"{len(cause.scenarios)} scenario(s)") if p)
        line(f"  {n}. {cause.level} {' '.join(cause.what.split())[:110]} ({where})")
    line(
        verdict.line, bold=True, red=verdict.exit_code == 1, yellow=verdict.exit_code == 2, green=verdict.exit_code == 0
    )
