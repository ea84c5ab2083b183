"""The conformance matrix: operation x rule, claiming only what was seen.

- An operation is *implemented* when a valid request got a 2xx, *not implemented* when valid
  requests got only 404, 405 or 501 (a 404 for a generated id does not count: that object does not
  exist), or every request got the target's answer for a path that does not exist, and *unknown*
  otherwise.
- A cell is *pass (n)* when the rule was checked on n responses it applies to and held on all of
  them, *FAIL (f/n)* when it broke on f of them, *not checked* when no response it applies to came
  back and calls to the operation were not made for the budget, *not seen* when none came back
  otherwise, and *n/a* when it cannot apply to the operation.
- An operation is *not checked* when fewer than half of the calls the run meant to make to it were
  made for the budget (`starved`), and *partly checked* when some were not.

Written to the run's folder, `reports/<run id>/conformance.{json,md}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workerprobe.suite.findings import Findings
from workerprobe.suite.registry import RULES

__all__ = ["checked", "implementation", "matrix", "write_matrix"]

_NOT_IMPLEMENTED = {404, 405, 501}


def implementation(findings: Findings, operation: str) -> str:
    valid: dict[int, int] = findings.valid_statuses.get(operation, {})
    if any(200 <= s < 300 for s in valid):
        return "implemented"
    if valid and set(valid) <= _NOT_IMPLEMENTED:
        return "not implemented"
    # Every answer was the target's answer for a path it has no route for (Cloudflare's API: a 400
    # "No route for that URI").
    if findings.no_route.get(operation) and findings.no_route[operation] >= sum(findings.statuses[operation].values()):
        return "not implemented"
    return "unknown"


def checked(findings: Findings, operation: str) -> str:
    """ "checked", "partly checked" or "not checked" (most of its calls not made for the budget)."""
    starved = findings.starved.get(operation, 0)
    if not starved:
        return "checked"
    made = findings.requests.get(operation, 0)
    return "not checked" if made < starved else "partly checked"


def _cell(findings: Findings, operation: str, rule: str) -> dict[str, Any]:
    only = RULES[rule].only
    if only is not None and operation not in only:
        return {"state": "n/a"}
    cell = findings.cells.get(operation, {}).get(rule)
    if cell is None or cell.checked == 0:
        return {"state": "not checked" if findings.starved.get(operation) else "not seen"}
    state = "fail" if cell.failed else "pass"
    return {"state": state, "checked": cell.checked, "failed": cell.failed}


def matrix(findings: Findings, operations: list[str]) -> dict[str, Any]:
    rows = []
    summary: dict[str, dict[str, int]] = {"MUST": {}, "SHOULD": {}}
    for op in operations:
        cells = {rule: _cell(findings, op, rule) for rule in RULES}
        for rule, cell in cells.items():
            level = summary[RULES[rule].level]
            level[cell["state"]] = level.get(cell["state"], 0) + 1
        rows.append(
            {
                "operation": op,
                "implementation": implementation(findings, op),
                "requests": findings.requests.get(op, 0),
                "checked": checked(findings, op),
                "not_made_for_budget": findings.starved.get(op, 0),
                "statuses": dict(sorted(findings.statuses.get(op, {}).items())),
                "cells": cells,
            }
        )
    return {
        "rules": {name: {"level": r.level, "why": r.why} for name, r in RULES.items()},
        "rows": rows,
        "summary": summary,
    }


def _symbol(cell: dict[str, Any]) -> str:
    state = cell["state"]
    if state == "pass":
        return f"pass ({cell['checked']})"
    if state == "fail":
        return f"**FAIL** ({cell['failed']}/{cell['checked']})"
    return {"n/a": "n/a", "not seen": "·", "not checked": "not checked"}[state]


def write_matrix(findings: Findings, operations: list[str], out_dir: Path, header: str) -> dict[str, Any]:
    """The matrix as JSON and Markdown; returns it."""
    report = matrix(findings, operations)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "conformance.json").write_text(json.dumps({"run": header, **report}, indent=2))
    rules = list(report["rules"])
    lines = [
        "# Conformance matrix",
        "",
        header,
        "",
        "Levels: MUST (an official OpenAI SDK raises the wrong class, hangs, loses data or silently returns "
        "wrong data), SHOULD (differs from the OpenAI API without breaking a client). A cell shows on how many "
        "responses the rule was checked; `·` none came back that it applies to; `not checked` none came back "
        "and calls were not made for the budget; `n/a` it cannot apply.",
        "",
        "| summary | pass | fail | not checked | not seen | n/a |",
        "|---|---|---|---|---|---|",
    ]
    states = ("pass", "fail", "not checked", "not seen", "n/a")
    for level, counts in report["summary"].items():
        lines.append(f"| {level} | " + " | ".join(str(counts.get(k, 0)) for k in states) + " |")
    lines += [
        "",
        "| operation | implemented | requests (not made for the budget) | "
        + " | ".join(f"{r} ({report['rules'][r]['level']})" for r in rules)
        + " |",
    ]
    lines.append("|---" * (len(rules) + 3) + "|")
    for row in report["rows"]:
        lines.append(
            f"| `{row['operation']}` | {row['implementation']} | {row['requests']}"
            + (f" ({row['not_made_for_budget']}, {row['checked']})" if row["not_made_for_budget"] else "")
            + " | "
            + " | ".join(_symbol(row["cells"][r]) for r in rules)
            + " |"
        )
    lines += ["", "## Why each rule has its level", ""]
    lines += [f"- `{name}` ({info['level']}): {info['why']}" for name, info in report["rules"].items()]
    (out_dir / "conformance.md").write_text("\n".join(lines) + "\n")
    return report
