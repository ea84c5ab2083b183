"""The conformance matrix: endpoint x check -> pass / fail / not implemented / not run, with the
check's level, written to `reports/conformance.{json,md}`.

Every test process records what schemathesis's checks found (`record`) and leaves a part file;
the controlling process merges the parts (`write_matrix`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from workerprobe.suite.checks import LEVELS as OPENAI_LEVELS

__all__ = ["CHECK_LEVELS", "Recorder", "write_matrix"]

# Built-in schemathesis checks and the registered OpenAI checks, with their conformance level.
CHECK_LEVELS: dict[str, str] = {
    "not_a_server_error": "MUST",
    "response_schema_conformance": "MUST",
    "content_type_conformance": "MUST",
    "positive_data_acceptance": "MUST",
    "ignored_auth": "MUST",
    "ensure_resource_availability": "MUST",
    "use_after_free": "MUST",
    "status_code_conformance": "SHOULD",
    "response_headers_conformance": "SHOULD",
    "negative_data_rejection": "SHOULD",
    "missing_required_header": "SHOULD",
    "unsupported_method": "SHOULD",
    "allow_header_conformance": "SHOULD",
    "openai_error_envelope": OPENAI_LEVELS["openai_error_envelope"],
    "openai_chat": "MUST",
    "openai_runs": OPENAI_LEVELS["openai_run_stream"],
    "openai_list_limit": OPENAI_LEVELS["openai_list_limit"],
}
_NOT_IMPLEMENTED = {404, 405, 501}
# Checks that only mean something for some operations (elsewhere they pass vacuously).
_APPLIES: dict[str, tuple[str, ...]] = {
    "openai_chat": ("POST /v1/chat/completions",),
    "openai_runs": ("POST /v1/threads/{thread_id}/runs", "POST /v1/threads/runs"),
    "openai_list_limit": (
        "GET /v1/assistants",
        "GET /v1/threads/{thread_id}/messages",
        "GET /v1/threads/{thread_id}/runs",
    ),
}


class Recorder:
    """What one test process saw: check outcomes and response statuses per operation."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, str]] = defaultdict(dict)
        self.examples: dict[str, dict[str, str]] = defaultdict(dict)
        self.statuses: dict[str, set[int]] = defaultdict(set)

    def record(self, operation: str, status: int, results: list[Any]) -> None:
        self.statuses[operation].add(status)
        for result in results:
            name = result.name
            failed = result.failure is not None
            if failed:
                self.outcomes[operation][name] = "fail"
                failure = result.failure
                detail = (getattr(failure, "message", "") or getattr(failure, "title", "")).strip()
                self.examples[operation].setdefault(name, " ".join(detail.split())[:240])
            else:
                self.outcomes[operation].setdefault(name, "pass")

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "outcomes": self.outcomes,
                    "examples": self.examples,
                    "statuses": {k: sorted(v) for k, v in self.statuses.items()},
                }
            )
        )


def _merge(parts: list[Path]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, set[int]]]:
    outcomes: dict[str, dict[str, str]] = defaultdict(dict)
    examples: dict[str, dict[str, str]] = defaultdict(dict)
    statuses: dict[str, set[int]] = defaultdict(set)
    for part in parts:
        data = json.loads(part.read_text())
        for op, checks in data["outcomes"].items():
            for name, outcome in checks.items():
                if outcome == "fail" or name not in outcomes[op]:
                    outcomes[op][name] = outcome
        for op, checks in data["examples"].items():
            for name, text in checks.items():
                examples[op].setdefault(name, text)
        for op, seen in data["statuses"].items():
            statuses[op].update(seen)
    return outcomes, examples, statuses


def write_matrix(parts: list[Path], operations: list[str], out_dir: Path, target: str) -> dict[str, dict[str, int]]:
    """Merge the part files into the matrix; returns the counts by level and outcome."""
    outcomes, examples, statuses = _merge(parts)
    rows = []
    counts: dict[str, dict[str, int]] = {"MUST": defaultdict(int), "SHOULD": defaultdict(int)}
    for op in operations:
        seen = statuses.get(op, set())
        implemented = not seen or bool(seen - _NOT_IMPLEMENTED) or any(200 <= s < 300 for s in seen)
        cells = {}
        for check, level in CHECK_LEVELS.items():
            if op not in statuses or op not in _APPLIES.get(check, (op,)):
                cell = "not run"
            elif not implemented:
                cell = "not implemented"
            else:
                cell = outcomes.get(op, {}).get(check, "not run")
            cells[check] = cell
            counts[level][cell] += 1
        rows.append({"operation": op, "cells": cells, "failures": examples.get(op, {})})
    summary = {level: dict(c) for level, c in counts.items()}
    report = {"target": target, "levels": CHECK_LEVELS, "rows": rows, "summary": summary}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "conformance.json").write_text(json.dumps(report, indent=2))
    (out_dir / "conformance.md").write_text(_markdown(report))
    return summary


_SYMBOL = {"pass": "pass", "fail": "**FAIL**", "not implemented": "not impl.", "not run": "-"}


def _markdown(report: dict[str, Any]) -> str:
    checks = list(report["levels"])
    lines = [
        "# Conformance matrix",
        "",
        f"Target: {report['target']}",
        "",
        "Levels: MUST (an official OpenAI client breaks or silently misbehaves), SHOULD (differs from "
        "OpenAI's reference behaviour without breaking a client). `-`: the check does not apply to the "
        "operation or did not run.",
        "",
        "| summary | " + " | ".join(["pass", "fail", "not implemented", "not run"]) + " |",
        "|---|---|---|---|---|",
    ]
    for level, counts in report["summary"].items():
        lines.append(
            f"| {level} | "
            + " | ".join(str(counts.get(k, 0)) for k in ("pass", "fail", "not implemented", "not run"))
            + " |"
        )
    lines += ["", "| operation | " + " | ".join(f"{c} ({report['levels'][c]})" for c in checks) + " |"]
    lines.append("|---" * (len(checks) + 1) + "|")
    for row in report["rows"]:
        lines.append(f"| `{row['operation']}` | " + " | ".join(_SYMBOL[row["cells"][c]] for c in checks) + " |")
    failures = [(row["operation"], check, text) for row in report["rows"] for check, text in row["failures"].items()]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- `{op}` {check} ({report['levels'].get(check, '?')}): {text}" for op, check, text in failures]
    return "\n".join(lines) + "\n"
