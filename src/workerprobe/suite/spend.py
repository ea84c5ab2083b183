"""What a scenario test's SDK clients did, seen exchange by exchange: each answer is booked under
the spec operation it hit (positive evidence for the matrix), what it created goes to the ledger,
and what it generated is charged to the run's budget from its `usage` (a stream, whose body the
hook does not read, at the worst case of its request)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import httpx
import orjson

from workerprobe.suite.budget import Budget, Hold
from workerprobe.suite.ledger import Ledger

__all__ = ["ScenarioSpend", "operation_for"]

_GENERATING = ("/chat/completions", "/embeddings", "/runs")


@cache
def _templates() -> tuple[tuple[str, re.Pattern[str], int, str], ...]:
    from workerprobe.suite.contract import operations

    found = []
    for label in operations():
        method, template = label.split(" ", 1)
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        found.append((method, pattern, template.count("{"), label))
    return tuple(sorted(found, key=lambda f: f[2]))  # literal paths before templated ones


def operation_for(method: str, url: str) -> str | None:
    """The spec operation a request hit (`/v1/threads/runs` is its own, not a thread id)."""
    path = httpx.URL(url).path
    for candidate, pattern, _, label in _templates():
        if candidate == method.upper() and pattern.search(path):
            return label
    return None


class ScenarioSpend:
    def __init__(self, budget: Budget | None, model: str, ledger: Ledger | None) -> None:
        self.budget, self.model, self.ledger = budget, model, ledger
        self.neurons = 0.0
        self.worst_case = 0.0
        self._runs: dict[str, float] = {}  # a run's usage, read again at every poll: counted once

    def seen(self, response: httpx.Response) -> None:
        from workerprobe.suite.contract import FINDINGS

        request = response.request
        label = operation_for(request.method, str(request.url))
        if label is not None:
            FINDINGS.seen_by_sdk(label, response.status_code)
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        body: Any = None
        if not streamed and "json" in response.headers.get("content-type", ""):
            try:
                body = orjson.loads(response.read())
            except (orjson.JSONDecodeError, httpx.HTTPError):
                body = None
        if self.ledger is not None and 200 <= response.status_code < 300:
            self.ledger.created_from(str(request.url), request.method, body)
        if self.budget is None or response.status_code >= 400:
            return
        if not any(p in request.url.path for p in _GENERATING):
            return
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            model = str(body.get("model") or self.model)
            cost = self.budget._model(model).neurons(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
            if body.get("object") == "thread.run":
                self._runs[str(body.get("id"))] = cost
            else:
                self.neurons += cost
        elif streamed and request.method == "POST":
            try:
                sent = orjson.loads(request.content or b"{}")
            except orjson.JSONDecodeError:
                sent = {}
            if isinstance(sent, dict):
                cost = self.budget.estimate(sent, self.model)
                self.neurons += cost
                self.worst_case += cost

    def settle(self, hold: Hold) -> None:
        if self.budget is not None:
            total = self.neurons + sum(self._runs.values())
            self.budget.charge(hold, total, worst_case=self.worst_case)
