"""The verdict people act on: per endpoint family and official SDK, READY, READY WITH LIMITATIONS or
NOT READY (or NOT CHECKED, UNVERIFIED, NOT RUN), what the run cost, the causes to fix first, and the
exit code: 0 every MUST holds, 1 a MUST fails, 2 the run could not verify.

Nothing unchecked is a pass: a family is NOT CHECKED when the budget left one of its operations
mostly uncalled (`conformance.checked`) or one of its MUST scenarios not run, and a run with such a
family ends UNVERIFIED (exit 2) unless a MUST failed elsewhere (FAIL stands: it was seen). Calls
not made for the budget on operations that were still mostly checked are named in the reason of
a PASS.

Written to the reports by `reports.py`, with the causes of `causes.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workerprobe.suite.causes import Cause, causes
from workerprobe.suite.conformance import checked, implementation
from workerprobe.suite.findings import BUDGET, RUN_OVER, Findings, Group
from workerprobe.suite.operations import load as load_operations

__all__ = ["CLIENTS", "Outcome", "Verdict", "distinct", "families", "family_of", "judge"]

CLIENTS = ("python", "node")
# Most answers refused for the key: nothing was really tested.
UNVERIFIED_AUTH_SHARE = 0.5


def families() -> tuple[str, ...]:
    """The endpoint families, in the spec's order (the rows of the readiness table)."""
    return load_operations().families


def family_of(operation: str) -> str:
    return load_operations().family_of(operation)


@dataclass(frozen=True)
class Outcome:
    """One scenario test's result."""

    nodeid: str
    family: str
    client: str  # python | node
    level: str
    outcome: str  # passed | failed | skipped
    message: str = ""


@dataclass
class Verdict:
    exit_code: int
    word: str  # PASS | FAIL | UNVERIFIED
    reason: str
    table: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: int = 0
    cost: dict[str, Any] = field(default_factory=dict)
    scenarios: dict[str, int] = field(default_factory=dict)
    causes: list[Cause] = field(default_factory=list)  # the one to fix first first

    @property
    def line(self) -> str:
        return f"workerprobe verdict: {self.word} ({self.reason}); exit {self.exit_code}"


def _family_state(
    family: str,
    client: str,
    findings: Findings,
    groups: list[Group],
    outcomes: list[Outcome],
    operations: list[str] | None,
) -> str:
    mine = [o for o in outcomes if o.family == family and o.client == client]
    seen = set(findings.requests) | set(findings.sdk_requests)
    # The spec's operations only: a probe with another method (TRACE /models/search) is no
    # operation that could be shown to work.
    ops = [op for op in (operations if operations is not None else seen) if family_of(op) == family and op in seen]
    must = [g for g in groups if family_of(g.operation) == family and g.level == "MUST"]
    should = [g for g in groups if family_of(g.operation) == family and g.level == "SHOULD"]
    failed_must = [o for o in mine if o.outcome == "failed" and o.level == "MUST"]
    failed_should = [o for o in mine if o.outcome == "failed" and o.level != "MUST"]
    skipped = [o for o in mine if o.outcome == "skipped"]
    if client == "node" and not mine:
        return "NOT RUN (no Node SDK scenario ran)"
    if client == "node" and all(o.outcome == "skipped" for o in mine):
        word = "NOT CHECKED" if BUDGET in mine[0].message else "NOT RUN"
        return f"{word} ({mine[0].message[:80]})"
    listed = operations if operations is not None else list(set(seen) | set(findings.starved))
    starved = [op for op in listed if family_of(op) == family and checked(findings, op) == "not checked"]
    unrun = [o for o in skipped if BUDGET in o.message and o.level == "MUST"]
    if not (must or failed_must) and (starved or unrun):
        reasons = []
        if starved:
            reasons.append(f"{len(starved)} operation(s) mostly not called for the budget")
        if unrun:
            reasons.append(f"{len(unrun)} MUST scenario(s) not run for the budget")
        return "NOT CHECKED: " + ", ".join(reasons)
    if not ops and not mine:
        return "NOT RUN (nothing of this family was tested)"
    states = {op: implementation(findings, op) for op in ops}
    core_missing = [op for op in load_operations().core(family) if states.get(op) == "not implemented"]
    if must or failed_must or core_missing:
        reasons = []
        if core_missing:
            reasons.append(f"{len(core_missing)} core operation(s) not implemented")
        if must:
            reasons.append(f"{sum(g.count for g in must)} responses break MUST rules")
        if failed_must:
            reasons.append(f"{len(failed_must)} MUST scenario(s) failed")
        return "NOT READY: " + ", ".join(reasons)
    if not any(s == "implemented" for s in states.values()) and not any(o.outcome == "passed" for o in mine):
        return "UNVERIFIED: no valid request was answered"
    if should or failed_should or skipped or any(s != "implemented" for s in states.values()):
        reasons = []
        if should:
            reasons.append(f"{sum(g.count for g in should)} responses break SHOULD rules")
        if failed_should:
            reasons.append(f"{len(failed_should)} SHOULD scenario(s) failed")
        if skipped:
            reasons.append(f"{len(skipped)} scenario(s) not run")
        unknown = [op for op, s in states.items() if s != "implemented"]
        if unknown:
            reasons.append(f"{len(unknown)} operation(s) not shown to work")
        return "READY WITH LIMITATIONS: " + ", ".join(reasons)
    return "READY"


def distinct(groups: list[Group]) -> int:
    """Distinct findings: an operation, a rule and a cause (whatever the phases that met it)."""
    return len({(g.operation, g.rule, g.cause) for g in groups})


def _cut_short(findings: Findings, outcomes: list[Outcome]) -> str:
    """What the run's deadline or a target past its bounds left undone ("" when nothing)."""
    parts = [f"{n} call(s) not made: {reason}" for reason, n in findings.reasons.items() if reason != BUDGET]
    late = [o for o in outcomes if o.outcome == "skipped" and RUN_OVER in o.message]
    if late:
        parts.append(f"{len(late)} scenario(s) not run: {RUN_OVER}")
    return "; ".join(parts)


def judge(
    findings: Findings,
    outcomes: list[Outcome],
    cost: dict[str, Any] | None = None,
    errors: int = 0,
    operations: list[str] | None = None,
    not_run: list[str] | None = None,
) -> Verdict:
    """The run's verdict from what it saw. `errors`: tests that broke (not a finding: the suite
    itself could not run them); `not_run`: the tests an interrupted run did not reach (never a
    pass: a MUST already failed still fails)."""
    groups = list(findings.groups.values())
    total = findings.total_requests
    refused = findings.auth_rejected
    table = {f: {c: _family_state(f, c, findings, groups, outcomes, operations) for c in CLIENTS} for f in families()}
    must_groups = [g for g in groups if g.level == "MUST"]
    scenarios: dict[str, int] = {}
    for o in outcomes:
        scenarios[o.outcome] = scenarios.get(o.outcome, 0) + 1
    must_scenarios = [o for o in outcomes if o.outcome == "failed" and o.level == "MUST"]
    verdict = Verdict(0, "PASS", "every MUST holds", table, total, cost or {}, scenarios, causes(findings, outcomes))
    if total and refused / total > UNVERIFIED_AUTH_SHARE:
        verdict.exit_code, verdict.word = 2, "UNVERIFIED"
        verdict.reason = f"{refused} of {total} answers were 401/403: the key was not accepted"
    elif total == 0 and not any(o.outcome == "passed" for o in outcomes):
        verdict.exit_code, verdict.word, verdict.reason = 2, "UNVERIFIED", "no request was answered"
    elif must_groups or must_scenarios:
        verdict.exit_code, verdict.word = 1, "FAIL"
        verdict.reason = (
            f"{distinct(must_groups)} distinct MUST findings in {sum(g.count for g in must_groups)} responses, "
            f"{len(must_scenarios)} MUST scenario(s) failed"
        )
    elif errors:
        verdict.exit_code, verdict.word, verdict.reason = 2, "UNVERIFIED", f"{errors} test(s) could not run"
    elif gaps := [f for f, row in table.items() if any(state.startswith("NOT CHECKED") for state in row.values())]:
        limit = f" (--max-neurons {cost['max_neurons']:g})" if cost else ""
        verdict.exit_code, verdict.word = 2, "UNVERIFIED"
        verdict.reason = (
            f"not checked for the budget{limit}: {', '.join(gaps)}; raise --max-neurons or select fewer tests (-k)"
        )
    elif stopped := _cut_short(findings, outcomes):
        # Nothing unchecked is a pass: the run's deadline, or a target past its bounds, cut it short.
        verdict.exit_code, verdict.word, verdict.reason = 2, "UNVERIFIED", stopped
    if not_run:
        stopped = f"interrupted: {len(not_run)} test(s) did not run"
        if verdict.exit_code == 1:
            verdict.reason += f"; {stopped}"
        else:
            verdict.exit_code, verdict.word = 2, "UNVERIFIED"
            verdict.reason = stopped if verdict.reason == "every MUST holds" else f"{stopped}; {verdict.reason}"
    should = distinct([g for g in groups if g.level == "SHOULD"])
    if verdict.exit_code == 0 and should:
        verdict.reason += f"; {should} distinct SHOULD findings"
    partly = sum(findings.starved.values())
    if verdict.exit_code == 0 and partly:
        verdict.reason += f"; {partly} calls not made for the budget on {len(findings.starved)} operation(s)"
    return verdict
