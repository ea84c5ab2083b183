"""The run's reports, for the Worker's author: causes first.

- `summary.md`: the verdict, then the causes to fix first (one line each: what breaks, where, how
  often), the readiness table, what was not checked and why, the cost; its top fits one screen;
- `findings.md`: every cause in the same order, MUST then SHOULD, once, with the OpenAI behaviour
  it departs from, its operations and scenarios, and one shortest reproduction to paste (bodies
  over 4 KB cut, with the cut said; every byte escaped, so the file is plain UTF-8 text);
- `findings.json` and `summary.json`: the same, for machines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workerprobe.suite import operations
from workerprobe.suite.causes import Cause
from workerprobe.suite.conformance import checked
from workerprobe.suite.findings import BUDGET, Findings
from workerprobe.suite.verdict import Verdict, distinct

__all__ = ["FIRST_SCREEN", "REPORTS", "SCHEMA_VERSION", "retired_note", "write"]

REPORTS = ("conformance.json", "conformance.md", "summary.json", "summary.md", "findings.md", "findings.json")
FIRST_SCREEN = 8  # causes listed at the top of summary.md
SCHEMA_VERSION = 1  # of summary.json (suite/spec/summary.schema.json); raised when a field changes meaning


def _where(cause: Cause) -> str:
    ops = [op for op, _ in cause.operations.most_common()]
    shown = ", ".join(f"`{op}`" for op in ops[:2]) + (f" and {len(ops) - 2} more" if len(ops) > 2 else "")
    parts = []
    if ops:
        parts.append(f"{cause.responses} response(s) on {len(ops)} operation(s): {shown}")
    if cause.scenarios:
        parts.append(f"{len(cause.scenarios)} SDK scenario(s) failed")
    return "; ".join(parts)


def _breaks(cause: Cause) -> str:
    calls = [c for c in cause.calls if c.startswith("client.")]
    if not calls:
        return ""
    return (
        " Breaks " + ", ".join(f"`{c}`" for c in calls[:3]) + (f" and {len(calls) - 3} more" if len(calls) > 3 else "")
    )


def _line(n: int, cause: Cause) -> str:
    what = " ".join(cause.what.split())[:160]
    return f"{n}. **{cause.level}** {what} ({_where(cause)}).{_breaks(cause)} [details](findings.md#cause-{n})"


def _table(verdict: Verdict) -> list[str]:
    lines = ["| family | official Python SDK | official Node SDK |", "|---|---|---|"]
    lines += [f"| {f} | {row['python']} | {row['node']} |" for f, row in verdict.table.items()]
    return lines


def retired_note(verdict: Verdict) -> str | None:
    """What the rows of an API OpenAI shut down mean now (None: no such row in the table)."""
    ops = operations.load()
    retired = sorted({op.retired for op in ops if op.retired})
    families = [f for f in verdict.table if all(op.retired for op in ops if op.family == f)]
    if not retired or not families:
        return None
    current = [f for f in verdict.table if f in ("responses", "conversations")]
    rows = f": the {' and '.join(current)} rows" if current else ""
    return (
        f"OpenAI shut the Assistants API down on {retired[0]}: the {', '.join(families)} rows check the Worker's "
        f"own emulation of it (still served by Workers that keep it). Current clients call the Responses and "
        f"Conversations APIs{rows}."
    )


def _retired(verdict: Verdict) -> list[str]:
    note = retired_note(verdict)
    return ["", note] if note else []


def _not_checked(findings: Findings, verdict: Verdict, outcomes: list[Any], not_run: list[str]) -> list[str]:
    lines = []
    if not_run:
        shown = ", ".join(f"`{t.rsplit('::', 1)[-1]}`" for t in not_run[:10])
        more = f" and {len(not_run) - 10} more" if len(not_run) > 10 else ""
        lines.append(f"- the run was interrupted: {len(not_run)} test(s) did not run: {shown}{more}")
    for op, starved in findings.starved.most_common():
        made = findings.requests.get(op, 0)
        lines.append(f"- `{op}`: {starved} of {made + starved} calls not made for the budget ({checked(findings, op)})")
    lines += [f"- {n} call(s) not made: {reason}" for reason, n in findings.reasons.most_common() if reason != BUDGET]
    unrun = [o for o in outcomes if o.outcome == "skipped"]
    for_budget = [o for o in unrun if BUDGET in o.message]
    if for_budget:
        families = ", ".join(sorted({o.family for o in for_budget}))
        lines.append(f"- {len(for_budget)} SDK scenario(s) not run for the budget ({families})")
    if len(unrun) > len(for_budget):
        lines.append(f"- {len(unrun) - len(for_budget)} SDK scenario(s) not run for other reasons (the test report)")
    return lines or ["- nothing: every generated case and scenario ran"]


def _summary(
    header: dict[str, Any],
    verdict: Verdict,
    findings: Findings,
    causes: list[Cause],
    outcomes: list[Any],
    not_run: list[str],
) -> str:
    must = sum(1 for c in causes if c.level == "MUST")
    lines = [
        f"# workerprobe: {verdict.word} (exit {verdict.exit_code})",
        "",
        f"{verdict.reason}. Target: {header['target']}. {verdict.requests} generated requests, "
        f"{sum(verdict.scenarios.values())} SDK scenarios; {must} MUST and {len(causes) - must} SHOULD causes.",
        "",
        "## Fix first",
        "",
    ]
    lines += [_line(i, c) for i, c in enumerate(causes[:FIRST_SCREEN], 1)] or ["Nothing: no rule was broken."]
    if len(causes) > FIRST_SCREEN:
        lines.append(f"\n... and {len(causes) - FIRST_SCREEN} more causes, in the same order: findings.md")
    lines += ["", "## Readiness", "", *_table(verdict), *_retired(verdict)]
    lines += ["", "## Not checked", "", *_not_checked(findings, verdict, outcomes, not_run)]
    if verdict.cost:
        c = verdict.cost
        lines += [
            "",
            "## Cost",
            "",
            f"{c['spent_neurons']} of {c['max_neurons']:g} neurons (contract cases {c['by_contract_cases']}, "
            f"scenarios {c['by_scenarios']}; {c['of_which_worst_case']} of it charged at the worst case).",
        ]
    lines += [
        "",
        f"Run {header['run_id']}, {header['started']} to {header['finished']}, workerprobe {header['version']}.",
    ]
    return "\n".join(lines) + "\n"


def _findings(header: dict[str, Any], causes: list[Cause]) -> str:
    lines = ["# Findings, the one to fix first first", "", f"Target: {header['target']}; run {header['run_id']}.", ""]
    if not causes:
        lines.append("No rule was broken.")
    for i, cause in enumerate(causes, 1):
        lines += [f'<a id="cause-{i}"></a>', f"## {i}. {cause.level} `{cause.rule}`", "", cause.what.strip(), ""]
        if cause.openai:
            lines += [f"What OpenAI's API does: {cause.openai}.", ""]
        if cause.calls:
            lines += ["Breaks: " + ", ".join(f"`{c}`" for c in cause.calls) + ".", ""]
        if cause.read_by:
            lines += [
                "The data was written by this run's own requests to "
                + ", ".join(f"`{op}`" for op in cause.operations)
                + ", which accepted and stored it; it reads back outside the schema on "
                + ", ".join(f"`{op}`" for op in cause.read_by)
                + ". Fix what the create accepts (or how it stores it), not the read.",
                "",
            ]
        if cause.scenarios:
            lines += ["Failed SDK scenarios: " + ", ".join(f"`{s}`" for s in cause.scenarios) + ".", ""]
        if cause.operations:
            ops = ", ".join(f"`{op}` ({n})" for op, n in cause.operations.most_common())
            lines += [f"Responses by operation: {ops}.", ""]
        if cause.repro:
            said = (
                "the create that wrote the data, accepted"
                if cause.read_by and not cause.status
                else f"answered HTTP {cause.status}"
                if cause.status
                else "its answer"
            )
            lines += [f"Shortest reproduction ({said}):", "", "```sh", cause.repro, "```", ""]
    return "\n".join(lines) + "\n"


def write(
    out_dir: Path,
    header: dict[str, Any],
    verdict: Verdict,
    findings: Findings,
    outcomes: list[Any] | None = None,
    not_run: list[str] | None = None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    causes = verdict.causes
    tree = [c.as_dict() for c in causes]
    data = {
        "schema_version": SCHEMA_VERSION,
        **header,
        "verdict": verdict.word,
        "exit_code": verdict.exit_code,
        "reason": verdict.reason,
        "requests": verdict.requests,
        "families": verdict.table,
        "causes": tree[:FIRST_SCREEN],
        "causes_total": {
            "MUST": sum(c.level == "MUST" for c in causes),
            "SHOULD": sum(c.level != "MUST" for c in causes),
        },
        "not_checked": {
            "reasons": dict(findings.reasons),
            "operations": {op: checked(findings, op) for op in findings.starved},
            "scenarios_not_run_for_the_budget": sum(
                1 for o in outcomes or [] if o.outcome == "skipped" and BUDGET in o.message
            ),
            "tests_not_run_when_interrupted": list(not_run or []),
        },
        "cost": verdict.cost,
        "distinct_findings": distinct(list(findings.groups.values())),
        "scenarios": verdict.scenarios,
    }
    (out_dir / "summary.json").write_text(json.dumps(data, indent=2))
    (out_dir / "findings.json").write_text(json.dumps({**header, "causes": tree}, indent=2))
    summary = _summary(header, verdict, findings, causes, outcomes or [], list(not_run or []))
    (out_dir / "summary.md").write_text(summary)
    (out_dir / "findings.md").write_text(_findings(header, causes))
