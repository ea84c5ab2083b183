"""Every operation of the spec, one test per operation and phase (examples, coverage, fuzzing):
every generated case runs, every built-in check and every OpenAI rule
(workerprobe.suite.registry) is applied to each answer, and a test fails once at its end, naming
each group of MUST findings (SHOULD ones too against the embedded default)."""

from __future__ import annotations

import schemathesis

from workerprobe.suite.budget import Budget
from workerprobe.suite.contract import call, load_schema
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.target import Target

examples = load_schema("examples")
coverage = load_schema("coverage")
fuzzing = load_schema("fuzzing")


@examples.parametrize()
def test_examples(
    case: schemathesis.Case, target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str
) -> None:
    call(case, target, budget, ledger, run_id)


@coverage.parametrize()
def test_coverage(
    case: schemathesis.Case, target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str
) -> None:
    call(case, target, budget, ledger, run_id)


@fuzzing.parametrize()
def test_fuzzing(
    case: schemathesis.Case, target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str
) -> None:
    call(case, target, budget, ledger, run_id)
