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

import orjson

from workerprobe.suite.blame import without_sent
from workerprobe.suite.registry import RULES, Finding, Rule

__all__ = ["BUDGET", "ECHO", "RUN_OVER", "Findings", "Group", "curl", "explanation", "merge", "shell_quote"]

AUTH_REJECTED = (401, 403)
# Why calls were not made (`Findings.reasons`), besides a target past its bounds.
BUDGET = "the neuron budget (--max-neurons) was spent or held"
RUN_OVER = "the run's deadline (--deadline) passed"
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "cookie", "cf-aig-authorization"}
_SKIP_HEADERS = {"host", "content-length", "accept-encoding", "connection", "user-agent", "accept"}


MADE_KEPT = 20_000  # ids of objects the run created, kept to blame bad data on what accepted it
MADE_REPRO_KEPT = 2_000  # and the requests that created the first of them
IDS_KEPT = 20  # culprit object ids kept per group
# The cause of a response that breaks its schema with a value the request sent, or that a create or
# a modify of this run stored: one behaviour (the input was not validated), whichever field it was.
ECHO = "echo: a value the schema does not allow, accepted, stored and returned"
REPRO_BODY_BYTES = 4096  # a reproduction's body is cut past this, and the cut said


def _encoded(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate, as JSON can carry one
        return text.encode("utf-8", "surrogatepass")


def shell_quote(value: str | bytes) -> str:
    """One shell word for any bytes: plain `'...'` when every character is printable, else bash's
    `$'...'` with each other byte escaped, so a reproduction is plain text that pastes exactly."""
    raw = value if isinstance(value, bytes) else _encoded(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return shlex.quote(text)
    out = []
    for char in raw.decode("utf-8", "surrogateescape"):
        if char in "\\'":
            out.append("\\" + char)
        elif "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append("".join(f"\\x{b:02x}" for b in char.encode("utf-8")))
    return "$'" + "".join(out) + "'"


def curl(method: str, url: str, headers: dict[str, str], body: bytes | str | None) -> str:
    """A curl command that can be pasted: credentials come from `$API_KEY`, nothing else is hidden;
    every byte is escaped, and a body over 4 KB is cut, with the cut said."""
    parts = ["curl", "-sS", "-X", shell_quote(method), shell_quote(url)]
    for name, value in headers.items():
        lower = name.lower()
        if lower in _SKIP_HEADERS:
            continue
        if lower in _SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] + " " if " " in value else ""
            parts += ["-H", f'"{name}: {scheme}$API_KEY"']
            continue
        parts += ["-H", shell_quote(f"{name}: {value}")]
    if not body:
        return " ".join(parts)
    raw = body if isinstance(body, bytes) else _encoded(body)
    if len(raw) <= REPRO_BODY_BYTES:
        return " ".join([*parts, "--data-binary", _body(raw)])
    note = f"# the body was {len(raw)} bytes: its first {REPRO_BODY_BYTES} follow, the rest is cut\n"
    return note + " ".join([*parts, "--data-binary", _body(raw[:REPRO_BODY_BYTES])])


def _body(raw: bytes) -> str:
    """The body as curl's argument; one with a NUL byte, which no argument can hold, from printf."""
    if b"\x00" not in raw:
        return shell_quote(raw)
    escaped = "".join(
        "%%" if b == 0x25 else "\\\\" if b == 0x5C else chr(b) if 0x20 <= b < 0x7F and b != 0x27 else f"\\x{b:02x}"
        for b in raw
    )
    return f"@<(printf '{escaped}')"


def _cause(rule: str, failure: Any) -> str:
    """What makes two failures the same finding: the rule and the kind of failure (numbers and ids
    in our own messages do not make a new cause)."""
    if isinstance(failure, Finding):  # "what is wrong: the sample that shows it" -> what is wrong
        head = failure.message.split(": ", 1)[0]
        if rule == "openai_error_envelope":  # its status stays: a 401 as text and a 500 as text differ
            return re.sub(r"(?<!HTTP )(?<!\d)\d+", "N", head)
        return re.sub(r"\d+", "N", head)  # an envelope that lacks `param` lacks it on every status
    key = getattr(failure, "_unique_key", "") or ""
    # one schema's failure is not another's ("created" missing from a model and from an assistant)
    where = re.search(r"Schema at (/components/schemas/[\w.-]+)", str(getattr(failure, "message", "") or ""))
    key += f" @ {where.group(1)}" if where else ""
    return f"{type(failure).__name__}: {failure.title}{' | ' + key if key and key != failure.title else ''}"


def _level(rule: Rule, operation: str) -> str:
    """The rule's level; SHOULD on an operation outside OpenAI's API (no SDK call reaches it, as
    the model catalogue page a Worker may serve): no client breaks on it."""
    from workerprobe.suite import operations  # the spec's facts (operations imports this module's peers)

    found = operations.load().get(operation)
    return "SHOULD" if found is not None and not found.sdk else rule.level


def _normalised(text: str) -> str:
    """What an answer says, its numbers, ids and quoted values out (the same failure of two
    requests says the same)."""
    head = re.split(r"[{\[]", text, maxsplit=1)[0]
    text = head if len(head.strip()) >= 12 else text  # "1 validation error: {...}": the details vary, not what it says
    # what failed, then why, then the details of why: "Chat completion failed: 5006: AiError: Bad
    # input: Value at '/seed' is 0" and "...: Type mismatch of '/tools'" are one cause (a refusal of
    # Workers AI answered as a 500), "Chat completion failed: Cannot read properties ..." another
    text = ": ".join(text.split(": ")[:3])
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\S*[@/]\S*", "…", text)  # a model or path named in it ("Unsupported model: @cf/x/y")
    text = re.sub(r"(:\s*)[^\s,.;]+(?=[\s,.;]|$)", r"\1…", text)  # the value after a colon ("model: 0.")
    text = re.sub(r"…[\s,.;…]*", "… ", text)  # a list of them is one
    return re.sub(r"\b(?:[a-z]+_)?[0-9a-f]{8,}\b|\d+", "N", text)[:160]


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
    ids: list[str] = field(default_factory=list)  # objects whose data broke the rule (a response's)

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
    starved: Counter[str] = field(default_factory=Counter)  # per operation: calls not made for the budget
    cleanup: tuple[int, int] = (0, 0)  # objects created on the target: deleted, left behind
    no_route: Counter[str] = field(default_factory=Counter)  # per operation: answered as a path with no route
    no_route_said: str = ""  # what the target says for a path it has no route for
    made: dict[str, str] = field(default_factory=dict)  # object id -> the operation whose case created it
    made_repro: dict[str, str] = field(default_factory=dict)  # object id -> the request that created it
    # object id -> the values this process's writes sent for it, as JSON (not merged: read back here)
    written: dict[str, set[bytes]] = field(default_factory=dict)

    def made_by(self, object_id: str, operation: str, repro: str = "") -> None:
        """This run's case of `operation` created the object `object_id` (the target accepted its data)."""
        if object_id in self.made or len(self.made) < MADE_KEPT:  # a later write (a modify) replaces
            self.made[object_id] = operation
        if repro and (object_id in self.made_repro or len(self.made_repro) < MADE_REPRO_KEPT):
            self.made_repro[object_id] = repro

    def counted(self, operation: str, rule: Rule) -> None:
        """One response broke the rule, counted in the matrix only (its finding is another's)."""
        self.cells[operation][rule.name].failed += 1

    def wrote(self, object_id: str, body: Any) -> None:
        """A write of this process sent `body` for the object (its values may come back later)."""
        if object_id not in self.written and len(self.written) >= MADE_KEPT:
            return
        values = self.written.setdefault(object_id, set())
        for value in body.values() if isinstance(body, dict) else ():
            try:
                if len(values) < 64:
                    values.add(orjson.dumps(value))
            except TypeError:  # what JSON cannot hold exactly (an integer past 64 bits) is not compared
                continue

    def sent_before(self, object_id: str | None, value: Any) -> bool:
        """Whether a write of this process sent `value` for the object."""
        if not object_id or object_id not in self.written:
            return False
        try:
            return orjson.dumps(value) in self.written[object_id]
        except TypeError:
            return False

    def sent(self, operation: str, status: int, valid: bool, evidence: bool = True, no_route: bool = False) -> None:
        """One request and its answer; `evidence`: it may prove the operation is (not) implemented;
        `no_route`: the answer is the target's answer for a path it has no route for."""
        self.requests[operation] += 1
        self.statuses[operation][status] += 1
        if valid and evidence:
            self.valid_statuses[operation][status] += 1
        if no_route:
            self.no_route[operation] += 1

    def seen_by_sdk(self, operation: str, status: int) -> None:
        """An official SDK's exchange in a scenario: its 2xx proves the operation is implemented."""
        self.sdk_requests[operation] += 1
        if 200 <= status < 300:
            self.valid_statuses[operation][status] += 1

    def not_made(self, operation: str, reason: str) -> None:
        """A call the suite did not make (the budget, the run's deadline, a target past its bounds)."""
        self.not_run[operation] += 1
        self.reasons[reason] += 1
        if reason == BUDGET:
            self.starved[operation] += 1

    def checked(self, operation: str, rule: Rule) -> None:
        self.cells[operation][rule.name].checked += 1

    def failed(
        self,
        operation: str,
        phase: str,
        rule: Rule,
        failure: Any,
        repro: str,
        status: int,
        source: str = "",
        said: str | None = None,
        cell: bool = True,
        culprit: str | None = None,
        echoed: bool = False,
        sent: Any = None,
    ) -> Group:
        """One broken rule in one response. `said`: what the answer's own body says (an error's
        message): two answers that say different things are two causes. `cell`: count the response
        in the matrix (once per rule and response, however many failures it has). `culprit`: the id
        of the object in the answer whose data broke the rule. `echoed`: the value that broke the
        response's schema is the one the request sent (one cause, whichever field it was). `sent`: the
        request's body, whose values an answer quotes back are not what tells two causes apart."""
        if cell:
            self.counted(operation, rule)
        cause, message = _cause(rule.name, failure), _summary(failure)
        cause = f"{ECHO} | {cause}" if echoed else cause  # a group per field, one cause for them all
        if said:
            cause = f"{cause} | HTTP {status}: {_normalised(without_sent(said, sent))}"
            message = f'{getattr(failure, "title", message)}: HTTP {status}, "{said}"'
        group = Group(
            operation, phase, rule.name, _level(rule, source or operation), cause, message, source=source or operation
        )
        group = self.groups.setdefault(group.key, group)
        group.count += 1
        if not group.repro or len(repro) < len(group.repro):
            group.repro, group.status = repro, status
        if culprit and culprit not in group.ids and len(group.ids) < IDS_KEPT:
            group.ids.append(culprit)
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
            "starved": dict(self.starved),
            "no_route": dict(self.no_route),
            "no_route_said": self.no_route_said,
            "made": self.made,
            "made_repro": self.made_repro,
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
            mine.ids += [i for i in group.ids if i not in mine.ids][: max(0, IDS_KEPT - len(mine.ids))]
            if len(group.repro) < len(mine.repro):
                mine.repro, mine.status = group.repro, group.status
        self.not_run.update(data.get("not_run", {}))
        self.reasons.update(data.get("reasons", {}))
        self.starved.update(data.get("starved", {}))
        self.no_route.update(data.get("no_route", {}))
        self.no_route_said = self.no_route_said or data.get("no_route_said", "")
        repros = data.get("made_repro", {})
        for object_id, operation in data.get("made", {}).items():
            self.made_by(object_id, operation, repros.get(object_id, ""))
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


def explanation(response: Any) -> str | None:
    """What an error answer says of itself: its envelope's message (OpenAI's, Cloudflare's, a
    framework's `detail`) with the explanation a Worker adds beside it (`error.details`: "Chat
    completion failed: Unexpected end of JSON input"), else its first line of text; None when it
    says nothing readable."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    found: Any = None
    if isinstance(body, dict):
        error, errors = body.get("error"), body.get("errors")
        if isinstance(error, dict):
            found = error.get("message")
            more = next((error[k] for k in ("details", "detail", "reason") if isinstance(error.get(k), str)), None)
            found = f"{found}: {more}" if isinstance(found, str) and more and more not in found else found
        elif isinstance(error, str):
            found = error
        elif isinstance(errors, list) and errors and isinstance(errors[0], dict):
            found = errors[0].get("message")
        if found is None:
            detail = body.get("detail", body.get("message"))
            found = detail if isinstance(detail, str) else (str(detail)[:160] if detail else None)
    elif body is None and response.content and b"<html" not in response.content[:512].lower():
        found = response.content[:160].decode(errors="replace").splitlines()[0]
    text = " ".join(str(found).split()) if found else ""
    return "".join(c for c in text if c.isprintable())[:160] or None
