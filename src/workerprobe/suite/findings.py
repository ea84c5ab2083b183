"""What the contract tests saw, per operation and phase: the requests sent, the statuses they got
(valid and invalid requests apart), how often each rule was checked, and every broken rule
grouped by cause, with a count and the shortest reproduction.

Each test process keeps one `Findings` and writes it to a part file; the controlling process
merges the parts (`merge`) for the matrix, the verdict and the reports.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workerprobe.suite.registry import RULES, Finding, Rule

__all__ = ["BUDGET", "RUN_OVER", "Findings", "Group", "curl", "merge"]

AUTH_REJECTED = (401, 403)
# Why calls were not made (`Findings.reasons`), besides a target past its bounds.
BUDGET = "the neuron budget (--max-neurons) was spent or held"
RUN_OVER = "the run's deadline (--deadline) passed"
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "cookie", "cf-aig-authorization"}
_SKIP_HEADERS = {"host", "content-length", "accept-encoding", "connection", "user-agent", "accept"}


def curl(method: str, url: str, headers: dict[str, str], body: bytes | str | None) -> str:
    """A curl command that can be pasted: credentials come from `$API_KEY`, nothing else is hidden."""
    parts = ["curl", "-sS", "-X", method, shlex.quote(url)]
    for name, value in headers.items():
        lower = name.lower()
        if lower in _SKIP_HEADERS:
            continue
        if lower in _SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] + " " if " " in value else ""
            parts += ["-H", f'"{name}: {scheme}$API_KEY"']
            continue
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if body:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        parts += ["--data-binary", shlex.quote(text)]
    return " ".join(parts)


def _cause(rule: str, failure: Any) -> str:
    """What makes two failures the same finding: the rule and the kind of failure (numbers and ids
    in our own messages do not make a new cause)."""
    if isinstance(failure, Finding):  # "what is wrong: the sample that shows it" -> what is wrong
        return re.sub(r"\d+", "N", failure.message.split(": ", 1)[0])
    key = getattr(failure, "_unique_key", "") or ""
    return f"{type(failure).__name__}: {failure.title}{' | ' + key if key and key != failure.title else ''}"


def _summary(failure: Any) -> str:
    if isinstance(failure, Finding):
        return failure.message
    message = " ".join(str(getattr(failure, "message", "") or "").split())
    return f"{failure.title}: {message[:300]}" if message else str(failure.title)


@dataclass
class Group:
    operation: str
    phase: str
    rule: str
    level: str
    cause: str
    message: str
    count: int = 0
    repro: str = ""
    status: int = 0
    source: str = ""  # the spec operation whose test sent it (a probe may hit another method)

    @property
    def key(self) -> str:
        return f"{self.operation}|{self.phase}|{self.rule}|{self.cause}"


@dataclass
class _Cell:
    checked: int = 0
    failed: int = 0


@dataclass
class Findings:
    """One test process's evidence."""

    requests: Counter[str] = field(default_factory=Counter)  # per operation
    sdk_requests: Counter[str] = field(default_factory=Counter)  # per operation, by the scenarios' SDKs
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    valid_statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    cells: dict[str, dict[str, _Cell]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(_Cell)))
    groups: dict[str, Group] = field(default_factory=dict)
    not_run: Counter[str] = field(default_factory=Counter)  # per operation: calls not made
    reasons: Counter[str] = field(default_factory=Counter)  # why calls were not made, and how many
    cleanup: tuple[int, int] = (0, 0)  # objects created on the target: deleted, left behind

    def sent(self, operation: str, status: int, valid: bool, evidence: bool = True) -> None:
        """One request and its answer; `evidence`: it may prove the operation is (not) implemented."""
        self.requests[operation] += 1
        self.statuses[operation][status] += 1
        if valid and evidence:
            self.valid_statuses[operation][status] += 1

    def seen_by_sdk(self, operation: str, status: int) -> None:
        """An official SDK's exchange in a scenario: its 2xx proves the operation is implemented."""
        self.sdk_requests[operation] += 1
        if 200 <= status < 300:
            self.valid_statuses[operation][status] += 1

    def not_made(self, operation: str, reason: str) -> None:
        """A call the suite did not make (the budget, the run's deadline, a target past its bounds)."""
        self.not_run[operation] += 1
        self.reasons[reason] += 1

    def checked(self, operation: str, rule: Rule) -> None:
        self.cells[operation][rule.name].checked += 1

    def failed(
        self, operation: str, phase: str, rule: Rule, failure: Any, repro: str, status: int, source: str = ""
    ) -> Group:
        self.cells[operation][rule.name].failed += 1
        group = Group(
            operation,
            phase,
            rule.name,
            rule.level,
            _cause(rule.name, failure),
            _summary(failure),
            source=source or operation,
        )
        group = self.groups.setdefault(group.key, group)
        group.count += 1
        if not group.repro or len(repro) < len(group.repro):
            group.repro, group.status = repro, status
        return group

    def of(self, operation: str, phase: str) -> list[Group]:
        """The groups the test of this operation and phase met."""
        return [g for g in self.groups.values() if (g.source or g.operation) == operation and g.phase == phase]

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "requests": dict(self.requests),
            "sdk_requests": dict(self.sdk_requests),
            "statuses": {op: dict(c) for op, c in self.statuses.items()},
            "valid_statuses": {op: dict(c) for op, c in self.valid_statuses.items()},
            "cells": {op: {n: [c.checked, c.failed] for n, c in cells.items()} for op, cells in self.cells.items()},
            "groups": [g.__dict__ for g in self.groups.values()],
            "not_run": dict(self.not_run),
            "reasons": dict(self.reasons),
            "cleanup": list(self.cleanup),
        }
        path.write_text(json.dumps(data))

    def load(self, path: Path) -> None:
        """Add a part file's evidence to this one."""
        data = json.loads(path.read_text())
        self.requests.update(data["requests"])
        self.sdk_requests.update(data.get("sdk_requests", {}))
        for op, counts in data["statuses"].items():
            self.statuses[op].update({int(k): v for k, v in counts.items()})
        for op, counts in data["valid_statuses"].items():
            self.valid_statuses[op].update({int(k): v for k, v in counts.items()})
        for op, cells in data["cells"].items():
            for name, (checked, failed) in cells.items():
                self.cells[op][name].checked += checked
                self.cells[op][name].failed += failed
        for raw in data["groups"]:
            group = Group(**raw)
            mine = self.groups.get(group.key)
            if mine is None:
                self.groups[group.key] = group
                continue
            mine.count += group.count
            if len(group.repro) < len(mine.repro):
                mine.repro, mine.status = group.repro, group.status
        self.not_run.update(data.get("not_run", {}))
        self.reasons.update(data.get("reasons", {}))
        deleted, left = data.get("cleanup", [0, 0])
        self.cleanup = (self.cleanup[0] + deleted, self.cleanup[1] + left)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def auth_rejected(self) -> int:
        return sum(c[s] for c in self.statuses.values() for s in AUTH_REJECTED)

    def rule_totals(self) -> dict[str, _Cell]:
        totals: dict[str, _Cell] = defaultdict(_Cell)
        for cells in self.cells.values():
            for name, cell in cells.items():
                totals[name].checked += cell.checked
                totals[name].failed += cell.failed
        return totals


def merge(parts: list[Path]) -> Findings:
    merged = Findings()
    for part in parts:
        merged.load(part)
    return merged


def level_of(rule: str) -> str:
    found = RULES.get(rule)
    return found.level if found else "MUST"
