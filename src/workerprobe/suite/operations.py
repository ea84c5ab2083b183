"""What the suite knows about each operation, read from the spec, where it is written once beside
the operation (vendor extensions):

    x-workerprobe-family     the endpoint family (a row of the readiness table)
    x-workerprobe-core       true: the family cannot do without it (a missing one is NOT READY)
    x-workerprobe-generates  false, or {caps: [field, ...]}: it makes the target call a model
                             (costs neurons); a case that names no cap gets the first, every
                             cap given is lowered to the suite's
    x-workerprobe-usage      {input: field, output: field, once_per: field}: where the answer
                             reports the tokens a generation used (`once_per`: an object read
                             again, a run polled, is counted once per id)
    x-workerprobe-creates    false, or {kind, id: field, delete: path, tag: bool, minimal: body}:
                             what a 2xx made, where its id is, how it is deleted (none: it goes
                             with its parent), whether its metadata carries the run's id, and the
                             smallest body that makes one (`{chat_model}` for the suite's chat
                             model): the contract tests send cases to objects that exist
    x-workerprobe-lists      the kind of object a list page holds (the `limit` rule)
    x-workerprobe-stream     the stream format its 2xx may take (chat, assistant)
    x-workerprobe-sdk        the official SDK's call for it (client.chat.completions.create): what a
                             finding on it breaks, in the words of the people who call it
    x-workerprobe-retired    the day OpenAI shut the operation down (the Assistants API, 2026-08-26):
                             a Worker's emulation of it is still checked, its findings come after

Fail-closed: a POST without `x-workerprobe-generates` is taken as generating at the worst case
(the dearest model, no cap the suite knows, its usage unread), so a forgotten fact costs a failing
unit test (`tests/unit/test_operations.py`), never a user's neurons. Operations that a link of the
spec leads to with a GET are the stateful reads (an object just created must be found there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SPEC", "WORST", "Creates", "Generates", "Operation", "Operations", "Usage", "load", "of"]

SPEC = Path(__file__).resolve().parent / "spec" / "openapi.yaml"
_METHODS = ("get", "post", "put", "patch", "delete")
PREFIX = "x-workerprobe-"


@dataclass(frozen=True)
class Generates:
    """It calls a model. `caps`: the request fields that limit the tokens generated (none known:
    the worst case applies)."""

    caps: tuple[str, ...] = ()
    known: bool = True  # False: no fact was given, everything is assumed at its worst

    @property
    def cap(self) -> str | None:
        """The field the suite adds to a case that names no cap."""
        return self.caps[0] if self.caps else None


WORST = Generates(known=False)


@dataclass(frozen=True)
class Usage:
    """Where an answer reports the tokens used, and by which field one generation is known."""

    input: str
    output: str | None = None
    once_per: str | None = None

    def tokens(self, body: Any) -> tuple[int, int] | None:
        """(input, output) tokens of an answer, or None when it reports none."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        try:
            return int(usage.get(self.input) or 0), int(usage.get(self.output) or 0) if self.output else 0
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Creates:
    kind: str
    id: str = "id"  # the field of the answer that names what was made
    delete: str | None = None  # its DELETE path with {id}; None: it goes with its parent
    tag: bool = False  # the run's id goes into its metadata
    minimal: dict[str, Any] | None = field(default=None, hash=False, compare=False)  # suite/objects.py


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    family: str
    core: bool = False
    generates: Generates | None = None
    usage: Usage | None = None
    creates: Creates | None = None
    lists: str | None = None
    stream: str | None = None
    sdk: str | None = None  # the official Python SDK's call
    retired: str | None = None  # the day OpenAI shut it down
    linked_read: bool = False  # a GET some link of the spec leads to

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def caps_of(self, body: Any) -> list[int]:
        """The token limits a request body gives (integers only)."""
        if not isinstance(body, dict) or self.generates is None:
            return []
        values = (body.get(field) for field in self.generates.caps)
        return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _generates(method: str, raw: Any) -> Generates | None:
    if raw is False:
        return None
    if isinstance(raw, dict):
        return Generates(tuple(raw.get("caps") or ()))
    return WORST if method == "POST" else None


def _operation(method: str, path: str, raw: dict[str, Any], linked: set[str]) -> Operation:
    usage = raw.get(f"{PREFIX}usage")
    creates = raw.get(f"{PREFIX}creates")
    return Operation(
        method=method,
        path=path,
        family=str(raw.get(f"{PREFIX}family") or "unknown"),
        core=bool(raw.get(f"{PREFIX}core")),
        generates=_generates(method, raw.get(f"{PREFIX}generates")),
        usage=Usage(**usage) if isinstance(usage, dict) else None,
        creates=Creates(**creates) if isinstance(creates, dict) else None,
        lists=raw.get(f"{PREFIX}lists"),
        stream=raw.get(f"{PREFIX}stream"),
        sdk=raw.get(f"{PREFIX}sdk"),
        retired=str(raw[f"{PREFIX}retired"]) if raw.get(f"{PREFIX}retired") else None,
        linked_read=method == "GET" and raw.get("operationId") in linked,
    )


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


class Operations:
    """Every operation of a spec, by label, and the facts above."""

    def __init__(self, spec: dict[str, Any]) -> None:
        paths: dict[str, Any] = spec.get("paths") or {}
        linked = {
            link.get("operationId")
            for item in paths.values()
            for method in _METHODS
            for answer in ((item.get(method) or {}).get("responses") or {}).values()
            if isinstance(answer, dict)
            for link in (answer.get("links") or {}).values()
        }
        self.by_label: dict[str, Operation] = {}
        for path, item in paths.items():
            for method, raw in item.items():
                if method in _METHODS and isinstance(raw, dict):
                    op = _operation(method.upper(), path, raw, linked)
                    self.by_label[op.label] = op
        self._patterns = [(_pattern(op.path), op) for op in self.by_label.values()]

    def __iter__(self) -> Any:
        return iter(self.by_label.values())

    def get(self, label: str) -> Operation | None:
        return self.by_label.get(label)

    def match(self, method: str, path: str) -> Operation | None:
        """The operation a request with this method hit (`path`: the URL's, any prefix before the spec's
        paths, a Worker's `/client/v4/.../ai`, allowed)."""
        method = method.upper()
        found = []
        for pattern, op in self._patterns:
            hit = pattern.search(path) if op.method == method else None
            if hit is not None:
                found.append((hit.start(), op.path.count("{"), op))
        # The match that covers most of the path (/v1/models/x is not /models/search's), then the
        # most literal one (/v1/threads/runs is not a thread id).
        return min(found, key=lambda f: (f[0], f[1]))[2] if found else None

    def family_of(self, label: str) -> str:
        """The family of an operation, or of a probe with a method the spec does not have
        (`TRACE /models/search` is in the family of /models/search)."""
        op = self.by_label.get(label)
        if op is not None:
            return op.family
        path = label.split(" ", 1)[-1]
        return next((o.family for o in self.by_label.values() if o.path == path), "unknown")

    @property
    def families(self) -> tuple[str, ...]:
        """The families in the order the spec first names them."""
        return tuple(dict.fromkeys(op.family for op in self.by_label.values()))

    def core(self, family: str) -> tuple[str, ...]:
        return tuple(op.label for op in self.by_label.values() if op.family == family and op.core)

    def labels(self, **facts: Any) -> tuple[str, ...]:
        """The operations whose facts have these values (`stream="chat"`, `linked_read=True`)."""
        return tuple(op.label for op in self.by_label.values() if all(getattr(op, k) == v for k, v in facts.items()))

    def listing(self, kind: str) -> Operation | None:
        """The operation that lists objects of this kind (at the top level), if any."""
        return next((op for op in self.by_label.values() if op.lists == kind and "{" not in op.path), None)


@cache
def load(spec: Path = SPEC) -> Operations:
    """The operations of the suite's spec (read once per process)."""
    return Operations(yaml.safe_load(spec.read_text(encoding="utf-8")))


def of(case: Any) -> Operation:
    """The facts of the spec operation a generated case belongs to (one the spec does not have is
    unknown, so taken to generate at the worst case)."""
    method, path = case.operation.method.upper(), case.operation.path
    found = load().get(f"{method} {path}")
    return found if found is not None else Operation(method, path, "unknown", generates=WORST)
