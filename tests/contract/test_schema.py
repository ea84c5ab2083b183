"""Every operation of the spec: examples, coverage and fuzzing phases, every built-in check and
the OpenAI checks (workerprobe.suite.checks)."""

from __future__ import annotations

import schemathesis

from tests.contract.conftest import call_and_validate, load_schema
from workerprobe.suite.budget import Budget
from workerprobe.suite.target import Target

schema = load_schema()


@schema.parametrize()
def test_operation(case: schemathesis.Case, target: Target, budget: Budget) -> None:
    call_and_validate(case, target, budget)
