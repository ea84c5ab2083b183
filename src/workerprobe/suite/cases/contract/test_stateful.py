"""Stateful phase: schemathesis walks the spec's links (create -> retrieve -> modify -> delete of
assistants, threads, messages and runs) and applies every rule to each step. Like the other
phases, a failing step never ends the walk: findings are recorded and the test fails once at its
end. Generating steps are capped and paid from the run's budget like any other call."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import requests
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup

from workerprobe.suite import bounds, contract
from workerprobe.suite.budget import Budget, Exhausted
from workerprobe.suite.findings import BUDGET, RUN_OVER
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.target import Target


class _WalkOver(Exception):
    """The walk ends here: the budget cannot pay for the next step, the run's deadline passed, or
    the target answered past the suite's bounds."""


_KEPT_BYTES = 64 * 1024


def _slim(response: Any) -> None:
    """A large answer, once checked, keeps only its top-level scalars (the ids the spec's links
    read): the walk keeps every step's answer to its end, and a target's 1 MB answers would add up."""
    if response.content_size <= _KEPT_BYTES:
        return
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    kept = {k: v for k, v in body.items() if isinstance(v, str | int | float | bool)} if isinstance(body, dict) else {}
    response.content = orjson.dumps(kept)
    response._deserialized = NOT_SET


def test_linked_workflows(target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str) -> None:
    schema = contract.load_schema()
    schema.config.update(base_url=target.root, headers={"Authorization": f"Bearer {target.api_key}"})
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def call(self, case: Any, **kwargs: Any) -> Any:
            hold = None
            label = case.operation.label
            if contract.STOP.reason is not None:
                contract.FINDINGS.not_made(label, contract.STOP.reason)
                raise _WalkOver(contract.STOP.reason)
            try:
                deadline = bounds.request_deadline()
            except bounds.RunOver:
                contract.FINDINGS.not_made(label, RUN_OVER)
                raise _WalkOver(RUN_OVER) from None
            if budget is not None:
                try:
                    hold = contract.hold_for(case, budget)
                except Exhausted as exc:
                    contract.FINDINGS.not_made(label, BUDGET)
                    raise _WalkOver(str(exc)) from None
            if ledger is not None:
                contract.tag(case, run_id)
            kwargs |= {"session": contract.session(), "timeout": deadline}
            try:
                response = super().call(case, **kwargs)
            except (bounds.UnboundedRequests, requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                if hold is not None and budget is not None:
                    budget.charge(hold, hold.neurons, worst_case=hold.neurons)
                if contract.unbounded(case, exc, target, deadline):
                    raise _WalkOver(str(exc)) from None
                raise
            if hold is not None and budget is not None:
                contract.settle(case, budget, hold, response)
            contract.created(case, ledger, response)
            return response

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, additional_checks, **kwargs)
            except FailureGroup:
                pass  # recorded by the after_validate hook
            except (bounds.RunOver, requests.exceptions.RequestException):
                pass  # a check's own request past its bounds: what was seen stands
            _slim(response)

    try:
        Machine.run(
            settings=settings(
                max_examples=contract.EXAMPLES,
                stateful_step_count=6,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate],  # every finding is recorded, nothing to shrink
                database=None,
            )
        )
    except _WalkOver as exc:
        print(f"stateful phase ended early: {exc}")
    except FlakyStrategyDefinition:
        # Hypothesis replays a prefix of steps and finds that the target now answers differently
        # (objects created, limits reached): the walk ends there, its findings stand.
        print("stateful phase ended early: the target answered a replayed step differently")
    strict = target.embedded
    groups = [g for g in contract.FINDINGS.groups.values() if g.phase == "stateful"]
    message = contract.verdict_of(groups, strict=strict)
    if message is not None:
        pytest.fail(message, pytrace=False)
