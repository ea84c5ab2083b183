"""Null where the spec allows none, on every create and modify of an object the suite can make
(an assistant, a thread, a message): each field in turn is sent as `null` to an object that exists,
and what comes back, and the object read back after, go through every rule. OpenAI refuses such a
field with a 400; a Worker that stores it hands every later reader a `null` where an SDK iterates
a list (`for tool in assistant.tools`). Random generation reaches this only by chance (plain
`schemathesis run` found `tools: null` stored by this gateway's modify); here every field is tried
once, at no cost in neurons."""

from __future__ import annotations

import re
from functools import cache, partial
from typing import Any

import pytest
import yaml

from workerprobe.suite import contract, objects, operations
from workerprobe.suite.budget import Budget
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.registry import RULES, Finding
from workerprobe.suite.target import Target

pytestmark = [pytest.mark.must]


@cache
def _spec() -> dict[str, Any]:
    return dict(yaml.safe_load(operations.SPEC.read_text()))


def _resolve(schema: Any) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = _spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema if isinstance(schema, dict) else {}


def _nullable(schema: Any) -> bool:
    schema = _resolve(schema)
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_nullable(s) for s in schema.get("oneOf", []) + schema.get("anyOf", []))


def _fields(op: operations.Operation) -> list[str]:
    raw = _spec()["paths"][op.path]["post"]
    body = _resolve(raw.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"))
    return sorted(name for name, sub in body.get("properties", {}).items() if not _nullable(sub))


def _probed() -> list[str]:
    """Creates with a smallest body, and modifies (a POST on one object of a kind the suite makes)."""
    found = []
    for op in operations.load():
        if op.method != "POST":
            continue
        modify = re.search(r"/{(\w+)_id}$", op.path)
        makes = op.creates is not None and op.creates.minimal is not None
        if makes or (modify and objects._maker(modify.group(1)) is not None and op.creates is None):
            found.append(op.label)
    return found


@pytest.mark.parametrize("label", _probed())
def test_null_fields(label: str, target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str) -> None:
    op = operations.load().get(label)
    assert op is not None
    schema = contract.load_schema()
    send = partial(contract._send, target=target, budget=budget, ledger=ledger, run_id=run_id)
    smallest = objects.minimal(op)
    read: Any = None
    for field in _fields(op):
        body = {**smallest, field: None}
        ids = {name: "unknown" for name in re.findall(r"{(\w+)}", op.path)}  # bound below
        case = schema[op.path]["POST"].Case(body=body, media_type="application/json", path_parameters=ids)
        contract.OWN[case.id] = "nulls"
        if ids and not objects.bind(case, send, always=True):
            pytest.skip(f"no object to send {label} to: the target did not make one")
        answer = send(case)
        if answer is not None and 200 <= answer.status_code < 300:  # accepted: stored, or dropped silently
            said = f"'{field}': null accepted (HTTP {answer.status_code}); OpenAI refuses it with 400"
            rule = RULES["negative_data_rejection"]
            contract.FINDINGS.failed(label, "nulls", rule, Finding(rule, said, label), contract._repro(answer),
                                     answer.status_code, source=label)  # fmt: skip
        read = read or case
    path = {label}
    kind = re.search(r"/{(\w+)_id}$", op.path)
    if read is not None and read.path_parameters and kind is not None:  # what a modify stored, read back
        listing = operations.load().listing(kind.group(1))
        reads = [(op.path, {})] if "get" in _spec()["paths"][op.path] else []
        reads += [(listing.path, {"limit": 100})] if listing is not None else []
        for where, query in reads:
            ids = {k: v for k, v in read.path_parameters.items() if f"{{{k}}}" in where}
            back = schema[where]["GET"].Case(path_parameters=ids, query=query)
            contract.OWN[back.id] = "nulls"
            send(back)
            path.add(f"GET {where}")
    groups = [g for g in contract.FINDINGS.groups.values() if g.source in path and g.phase == "nulls"]
    message = contract.verdict_of(groups, strict=target.embedded)
    if message is not None:
        pytest.fail(message, pytrace=False)
