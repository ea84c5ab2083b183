from __future__ import annotations

import pytest

from workerprobe.suite.budget import Budget, Exhausted

MODEL = "@cf/meta/llama-3.1-8b-instruct-fast"


def test_reserve_settle_and_refuse() -> None:
    budget = Budget(2.0)
    body = {"model": MODEL, "messages": "hello", "max_tokens": 10}
    reserved = budget.reserve(body, MODEL)
    assert reserved == pytest.approx(((1 + 16) * 25608 + 10 * 75147) / 1e6)
    budget.settle(reserved, MODEL, 200, {"prompt_tokens": 5, "completion_tokens": 3})
    assert budget.spent == pytest.approx((5 * 25608 + 3 * 75147) / 1e6)
    refused = budget.reserve(body, MODEL)
    budget.settle(refused, MODEL, 404, None)  # a refused call costs nothing
    assert budget.spent == pytest.approx((5 * 25608 + 3 * 75147) / 1e6)
    with pytest.raises(Exhausted, match="not run"):
        budget.reserve({**body, "max_tokens": 100_000}, MODEL)
    assert budget.refused == 1


def test_unknown_models_cost_the_dearest_price() -> None:
    budget = Budget(1000.0)
    known = budget.estimate({"model": MODEL, "max_tokens": 100}, MODEL)
    unknown = budget.estimate({"model": "@cf/some/new-model", "max_tokens": 100}, MODEL)
    assert unknown > known


@pytest.mark.parametrize("value", ["AAA", [1], None, 0, True])
def test_invalid_limits_are_estimated_at_the_model_default(value: object) -> None:
    budget = Budget(1000.0)
    default = budget.estimate({"model": MODEL}, MODEL)
    assert budget.estimate({"model": MODEL, "max_tokens": value}, MODEL) == default
