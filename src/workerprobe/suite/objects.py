"""Cases sent to objects that exist.

A generated id (`asst_x8Qz...`) only ever reaches an operation's 404: alone, the per-operation
contract tests never check what `POST /v1/assistants/{assistant_id}` does to an assistant, and a
modify that stores `{"tools": null}`, after which every read of that assistant breaks its schema,
went unseen (plain `schemathesis run` found it through its stateful engine). So one case in
`EVERY` of an operation whose path names a kind the spec says how to make (`minimal` in
`x-workerprobe-creates`: an assistant, a thread, a message) is sent to one this test process made
with that smallest body, through the same call, checks, budget, ledger and tag as any case; the
others keep their generated ids, so unknown ids answered 404 stay checked. A case generated
negative in its path keeps its ids (made valid, it would be a false "invalid data accepted"). What
a bound DELETE removed is made again when next needed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from schemathesis.core.parameters import ParameterLocation

from workerprobe.suite import operations
from workerprobe.suite.target import chat_model

__all__ = ["EVERY", "bind", "forget", "minimal", "tag"]

EVERY = 2  # one case in EVERY keeps its generated ids

_MADE: dict[str, dict[str, str]] = {}  # kind -> the path ids that reach one (its own and its parents')
_REFUSED: set[str] = set()  # kinds the target would not make: not asked again by this process
_SEEN: Counter[str] = Counter()

Send = Callable[[Any], Any]  # sends a case as the contract tests do; the answer, or None


def _maker(kind: str) -> operations.Operation | None:
    op: operations.Operation
    for op in operations.load():
        creates = op.creates
        if op.method == "POST" and creates is not None and creates.kind == kind and creates.minimal is not None:
            return op
    return None


def _kind(param: str) -> str | None:
    kind = param.removesuffix("_id")
    return kind if param.endswith("_id") and _maker(kind) is not None else None


def _make(kind: str, schema: Any, send: Send) -> dict[str, str] | None:
    if kind in _MADE:
        return _MADE[kind]
    maker = _maker(kind)
    if maker is None or kind in _REFUSED:
        return None
    ids: dict[str, str] = {}
    for name in re.findall(r"{(\w+)}", maker.path):
        parent = _kind(name)
        found = _make(parent, schema, send) if parent is not None else None
        if found is None:
            _REFUSED.add(kind)
            return None
        ids |= found
    body = minimal(maker)
    path_ids = {k: ids[k] for k in ids if f"{{{k}}}" in maker.path}
    case = schema[maker.path]["POST"].Case(path_parameters=path_ids, body=body, media_type="application/json")
    response = send(case)
    made = _id(response, maker.creates.id if maker.creates is not None else "id")
    if made is None:
        _REFUSED.add(kind)
        return None
    _MADE[kind] = {**ids, f"{kind}_id": made}
    return _MADE[kind]


def minimal(op: operations.Operation) -> dict[str, Any]:
    """The smallest body that makes one (the spec's `minimal`, with the suite's chat model); {} for none."""
    given = op.creates.minimal if op.creates is not None and op.creates.minimal is not None else {}
    return dict(json.loads(json.dumps(given).replace("{chat_model}", chat_model())))


def _id(response: Any, field: str) -> str | None:
    if response is None or not 200 <= response.status_code < 300:
        return None
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    value = body.get(field) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def bind(case: Any, send: Send, always: bool = False) -> bool:
    """Point the case's path ids at objects this process made, one case in EVERY excepted (none,
    `always`); whether it was bound."""
    params = dict(case.path_parameters or {})
    kinds = [k for k in (_kind(name) for name in params) if k is not None]
    if not kinds:
        return False
    meta = getattr(case, "meta", None)
    if meta is not None and meta.is_negative_at(ParameterLocation.PATH):
        return False
    label = case.operation.label
    _SEEN[label] += 1
    if _SEEN[label] % EVERY == 0 and not always:
        return False
    # the deepest kind named brings its parents' ids (a message's thread)
    deepest = max(kinds, key=lambda k: len(_maker(k).path))  # type: ignore[union-attr]
    ids = _make(deepest, case.operation.schema, send)
    if ids is None or not all(name in ids for name in params if _kind(name) is not None):
        return False
    case.path_parameters = {**params, **{name: ids[name] for name in params if name in ids}}
    return True


def forget(case: Any, response: Any) -> None:
    """A bound DELETE that removed its object: it, and what lived in it, are made again when needed."""
    if case.method.upper() != "DELETE" or response is None or not 200 <= response.status_code < 300:
        return
    names = re.findall(r"{(\w+)}", case.path)
    gone = (case.path_parameters or {}).get(names[-1]) if names else None
    for kind in [k for k, ids in _MADE.items() if gone in ids.values()]:
        del _MADE[kind]


def tag(case: Any, run_id: str) -> None:
    """Mark what a create makes with the run's id (only where a metadata map has room for it)."""
    creates = operations.of(case).creates
    if creates is None or not creates.tag or not isinstance(case.body, dict):
        return
    metadata = case.body.get("metadata")
    if "metadata" not in case.body:
        case.body["metadata"] = {"workerprobe_run": run_id}
    elif isinstance(metadata, dict) and len(metadata) < 16:
        case.body["metadata"] = {**metadata, "workerprobe_run": run_id}
