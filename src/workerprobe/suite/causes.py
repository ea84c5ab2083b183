"""From what a run saw to what a Worker's author fixes first: findings grouped into causes.

A cause is one behaviour of the target ("error bodies lack `param`", "a request without `messages`
answers 500: Cannot read properties of undefined"), whatever operations and phases met it: the
contract findings of one rule and one cause across operations, and the SDK scenarios that failed
with the same error. Causes are ranked by what they break for a client: MUST before SHOULD, then
the official SDK calls they break (a scenario that failed, and every operation's call), then how
many operations, then how many responses.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from workerprobe.suite import operations
from workerprobe.suite.conformance import implementation
from workerprobe.suite.findings import ECHO, Findings
from workerprobe.suite.registry import RULES

__all__ = ["Cause", "causes"]


@dataclass
class Cause:
    level: str
    rule: str
    what: str  # the behaviour, as the first response that showed it says it
    operations: Counter[str] = field(default_factory=Counter)  # responses per operation
    scenarios: list[str] = field(default_factory=list)  # SDK scenarios that failed on it
    repro: str = ""
    status: int = 0
    family: str = ""  # the family of a cause met by scenarios, or by operations not implemented
    read_by: list[str] = field(default_factory=list)  # where data its operations accepted read back wrong
    echo: bool = False  # values the schema does not allow, accepted and returned as sent
    fields: list[str] = field(default_factory=list)  # the fields it was seen on

    @property
    def responses(self) -> int:
        return sum(self.operations.values())

    @property
    def calls(self) -> list[str]:
        """The official SDK calls it breaks: those of its operations."""
        found = [operations.load().get(op) for op in self.operations]
        return sorted({op.sdk for op in found if op is not None and op.sdk})

    @property
    def openai(self) -> str:
        rule = RULES.get(self.rule)
        return rule.openai if rule is not None else ""

    @property
    def retired(self) -> bool:
        """Every operation it concerns is one OpenAI shut down (the Assistants API)."""
        ops = operations.load()
        found = [ops.get(op) for op in self.operations] or [ops.get(op) for op in ops.labels(family=self.family)]
        return bool(found) and all(op is not None and op.retired for op in found)

    def rank(self) -> tuple[int, int, int, int, int, int]:
        """MUST first; then what valid requests meet before what only invalid input stored and
        returned causes (an SDK sends typed values); then the SDK calls broken, operations, responses."""
        breaks = len(self.calls) + len(self.scenarios)
        return (self.level != "MUST", self.retired, self.echo, -breaks, -len(self.operations), -self.responses)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "rule": self.rule,
            "what": self.what,
            "breaks": self.calls,
            "operations": dict(self.operations.most_common()),
            "responses": self.responses,
            "scenarios": self.scenarios,
            "openai": self.openai,
            "reproduction": self.repro,
            "status": self.status,
            "read_back_by": self.read_by,
        }


def _scenario_cause(message: str) -> str:
    """What makes two failed scenarios one cause: the error they end on, its numbers and ids out."""
    first = (message or "failed").strip().splitlines()[0]
    return re.sub(r"\b(?:[a-z]+_)?[0-9a-f]{8,}\b|\d+", "N", first)[:160]


def _missing(findings: Findings) -> dict[str, Cause]:
    """One cause per family for its operations that are not implemented (what else they showed
    follows from that), MUST when the family cannot do without one of them."""
    ops = operations.load()
    found: dict[str, Cause] = {}
    for label in sorted(findings.requests):
        if implementation(findings, label) != "not implemented":
            continue
        family = ops.family_of(label)
        cause = found.get(family)
        if cause is None:
            said = findings.no_route_said or "404, 405 or 501"
            what = f"The {family} operations are not implemented: each answers as a path that does not exist ({said})"
            cause = found[family] = Cause("SHOULD", "not_implemented", what, family=family)
        cause.operations[label] += findings.requests[label]
        if label in ops.core(family):
            cause.level = "MUST"
    for group in findings.groups.values():
        cause = found.get(ops.family_of(group.operation))
        if cause is not None and group.operation in cause.operations and group.repro:
            if not cause.repro or len(group.repro) < len(cause.repro):
                cause.repro, cause.status = group.repro, group.status
    return found


def _writers(findings: Findings, group: Any) -> list[str]:
    """The operations whose cases created the objects whose data broke a response schema on
    another operation (a list or a retrieve of what the fuzzer created with junk fields)."""
    made = {findings.made[i] for i in group.ids if i in findings.made}
    return sorted(made) if made and group.operation not in made else []


def _echo(cause: Cause, message: str) -> None:
    """The cause of values accepted that the schema does not allow, with the fields it was seen on."""
    cause.echo = True
    field_of = re.findall(r"/properties/([\w.-]+)", message.split("Value:", 1)[0])
    if field_of and field_of[-1] not in cause.fields:
        cause.fields.append(field_of[-1])
    shown = ", ".join(f"`{f}`" for f in cause.fields[:8]) + (", …" if len(cause.fields) > 8 else "")
    cause.what = (
        "Values the schema does not allow are accepted, stored and returned as they were sent"
        + (f" ({shown})" if shown else "")
        + ": the input is not validated, and every client that reads such an object back gets it"
    )


def causes(findings: Findings, outcomes: list[Any]) -> list[Cause]:
    """Every cause of the run, the one to fix first first."""
    missing = _missing(findings)
    merged: dict[tuple[str, str], Cause] = {("not_implemented", f): c for f, c in missing.items()}
    for group in findings.groups.values():
        if any(group.operation in c.operations for c in missing.values()):
            continue
        writers = _writers(findings, group)
        echo = bool(writers) or group.cause.startswith(ECHO)
        key = (group.rule, ECHO if echo else group.cause)
        cause = merged.setdefault(key, Cause(group.level, group.rule, group.message, repro=group.repro))
        if echo:
            _echo(cause, group.message)
        if writers:  # the data came from this run's creates: the one that accepted it is to blame
            for writer in writers:
                cause.operations[writer] += group.count
            if group.operation not in cause.read_by:
                cause.read_by.append(group.operation)
            made = [r for r in (findings.made_repro.get(i, "") for i in group.ids) if r]
            shown = min(made, key=len) if made else group.repro
            if not cause.read_by[1:] or len(shown) < len(cause.repro):
                cause.repro, cause.status = shown, (0 if made else group.status)
        else:
            cause.operations[group.operation] += group.count
            if not cause.repro or (group.repro and len(group.repro) < len(cause.repro)):
                cause.repro, cause.status = group.repro, group.status
        if group.level == "MUST":
            cause.level = "MUST"
    for outcome in outcomes:
        if outcome.outcome != "failed":
            continue
        if outcome.family in missing:  # what a family that is not there does to its scenarios
            missing[outcome.family].scenarios.append(f"{outcome.nodeid.rsplit('::', 1)[-1]} ({outcome.client} SDK)")
            continue
        name = f"{outcome.nodeid.rsplit('::', 1)[-1]} ({outcome.client} SDK)"
        key = (f"scenario:{outcome.family}", _scenario_cause(outcome.message))
        what = f"{outcome.family}: {(outcome.message or 'failed').strip()[:300]}"
        cause = merged.setdefault(key, Cause(outcome.level, "scenario", what, family=outcome.family))
        cause.scenarios.append(name)
        if outcome.level == "MUST":
            cause.level = "MUST"
    return sorted(merged.values(), key=Cause.rank)
