"""What a scenario test's SDK clients did, seen exchange by exchange: each answer is booked under
the spec operation it hit (positive evidence for the matrix), what it created goes to the ledger,
and what it generated is charged to the run's budget from the usage it reports, where the spec
says it reports it (a stream, whose body the hook does not read, at the worst case of its request).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from workerprobe.suite import operations
from workerprobe.suite.budget import Budget, Hold
from workerprobe.suite.ledger import Ledger

__all__ = ["ScenarioSpend", "operation_for"]


def operation_for(method: str, url: str) -> str | None:
    """The spec operation a request hit (`/v1/threads/runs` is its own, not a thread id)."""
    found = operations.load().match(method, httpx.URL(url).path)
    return found.label if found is not None else None


class ScenarioSpend:
    def __init__(self, budget: Budget | None, model: str, ledger: Ledger | None) -> None:
        self.budget, self.model, self.ledger = budget, model, ledger
        self.neurons = 0.0
        self.worst_case = 0.0
        self._once: dict[str, float] = {}  # usage read again (a run at every poll): counted once per id

    def seen(self, response: httpx.Response) -> None:
        from workerprobe.suite.contract import FINDINGS

        request = response.request
        op = operations.load().match(request.method, request.url.path)
        if op is not None:
            FINDINGS.seen_by_sdk(op.label, response.status_code)
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        body: Any = None
        if not streamed and "json" in response.headers.get("content-type", ""):
            try:
                body = orjson.loads(response.read())
            except (orjson.JSONDecodeError, httpx.HTTPError):
                body = None
        if op is None:
            return
        if self.ledger is not None and 200 <= response.status_code < 300:
            self.ledger.created(op, body)
        if self.budget is None or response.status_code >= 400:
            return
        used = op.usage.tokens(body) if op.usage is not None else None
        if used is not None and isinstance(body, dict):
            cost = self.budget.model(str(body.get("model") or self.model)).neurons(*used)
            assert op.usage is not None
            if op.usage.once_per is not None:
                self._once[str(body.get(op.usage.once_per))] = cost
            else:
                self.neurons += cost
        elif streamed and op.generates is not None:
            try:
                sent = orjson.loads(request.content or b"{}")
            except orjson.JSONDecodeError:
                sent = {}
            if isinstance(sent, dict):
                cost = self.budget.estimate(sent, self.model, op.generates)
                self.neurons += cost
                self.worst_case += cost

    def settle(self, hold: Hold) -> None:
        if self.budget is not None:
            total = self.neurons + sum(self._once.values())
            self.budget.charge(hold, total, worst_case=self.worst_case)
