from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from workerprobe.catalogue import load
from workerprobe.suite import operations
from workerprobe.suite.budget import NOT_GENERATING_AFTER, Budget, Exhausted
from workerprobe.suite.operations import WORST

MODEL = load().default("text-generation").name
CHAT = operations.load().by_label["POST /v1/chat/completions"].generates
assert CHAT is not None


def test_reserve_settle_and_refuse(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 2.0, shares={"contract": 1.0})
    body = {"model": MODEL, "messages": "hello", "max_tokens": 10}
    hold = budget.reserve(body, MODEL, CHAT)
    # "hello" at a token a byte (5), the template's 8, the 16 of slack, and 10 output tokens.
    assert hold.neurons == pytest.approx(((5 + 8 + 16) * 25608 + 10 * 75147) / 1e6)
    assert budget.spend().held == pytest.approx(hold.neurons)
    budget.settle(hold, MODEL, 200, (5, 3))
    spend = budget.spend()
    assert spend.spent == pytest.approx((5 * 25608 + 3 * 75147) / 1e6) and spend.held == pytest.approx(0)
    refused = budget.reserve(body, MODEL, CHAT)
    budget.settle(refused, MODEL, 404, None)  # a refused call costs nothing
    assert budget.spend().spent == pytest.approx((5 * 25608 + 3 * 75147) / 1e6)
    with pytest.raises(Exhausted, match="not run"):
        budget.reserve({**body, "max_tokens": 100_000}, MODEL, CHAT)
    assert budget.spend().refused == 1


def test_an_answer_without_usage_is_charged_its_worst_case(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 10.0)
    hold = budget.reserve({"model": MODEL, "messages": "hi", "max_tokens": 8}, MODEL, CHAT)
    budget.settle(hold, MODEL, 200, None)
    spend = budget.spend()
    assert spend.spent == pytest.approx(hold.neurons) == pytest.approx(spend.worst_case)


def _spend_in_another_process(path: str, n: int) -> None:
    budget = Budget(Path(path), 0.0, shares={"contract": 1.0})  # the cap of the run that made the file holds
    for _ in range(n):
        hold = budget.hold(1.0)
        budget.charge(hold, 0.5)


def test_one_budget_for_all_processes(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    budget = Budget(path, 1000.0, shares={"contract": 1.0})
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_spend_in_another_process, args=(str(path), 50)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    spend = budget.spend()
    assert spend.spent == pytest.approx(50.0) and spend.calls == 100 and spend.held == pytest.approx(0)
    assert spend.max_neurons == 1000.0


def test_unknown_models_cost_the_dearest_price(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 1000.0)
    known = budget.estimate({"model": MODEL, "max_tokens": 100}, MODEL, CHAT)
    unknown = budget.estimate({"model": "@cf/some/new-model", "max_tokens": 100}, MODEL, CHAT)
    assert unknown > known


@pytest.mark.parametrize("value", ["AAA", [1], None, 0, True])
def test_invalid_limits_are_estimated_at_the_model_default(tmp_path: Path, value: object) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 1000.0)
    default = budget.estimate({"model": MODEL}, MODEL, CHAT)
    assert budget.estimate({"model": MODEL, "max_tokens": value}, MODEL, CHAT) == default


def test_the_scenarios_keep_their_share(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 100.0)  # contract 60%, scenarios 40%
    budget.hold(55.0, "contract")
    with pytest.raises(Exhausted, match="contract"):
        budget.hold(10.0, "contract")
    budget.hold(40.0, "scenarios")
    with pytest.raises(Exhausted):
        budget.hold(6.0, "scenarios")
    assert budget.spend().held == pytest.approx(95.0) and budget.spend("contract").refused == 1


def test_no_operation_starves_another(tmp_path: Path) -> None:
    """Each planned member is sure of an equal part of its pool; past it, one may use only what
    the pool does not keep for the others whose tests have not ended."""
    budget = Budget(tmp_path / "b.sqlite3", 100.0, shares={"contract": 1.0})
    budget.plan("contract", {"chat": 1, "runs": 1, "embeddings": 1})  # 33.3 each
    for hold in [budget.hold(10.0, member="chat") for _ in range(3)]:
        budget.charge(hold, 10.0)
    with pytest.raises(Exhausted, match="chat used its fair part"):
        budget.hold(10.0, member="chat")  # 40 > 33.3, and the others keep 66.7 of the 70 left
    budget.hold(30.0, member="runs")  # within its own part, whatever chat did
    budget.finished("contract", "embeddings")  # ended, having used nothing: its part is free
    budget.hold(10.0, member="chat")
    assert budget.members("contract")["chat"] == (pytest.approx(40.0), 1)
    budget.hold(5.0, member="")  # not a planned member: the pool's share alone
    budget.plan("contract", {"chat": 99})  # the first plan stands
    assert set(budget.members("contract")) == {"chat", "runs", "embeddings"}


def test_an_operation_the_target_does_not_serve_keeps_only_one_call(tmp_path: Path) -> None:
    """Runs answered 404 three times (nothing charged): chat may use what runs' reserve held."""
    budget = Budget(tmp_path / "b.sqlite3", 90.0, shares={"contract": 1.0})
    budget.plan("contract", {"chat": 1, "runs": 1, "embeddings": 1}, least=2.0)  # 30 each
    budget.charge(budget.hold(30.0, member="chat"), 30.0)
    with pytest.raises(Exhausted, match="chat used its fair part"):
        budget.hold(20.0, member="chat")  # runs and embeddings may still claim 60 of the 60 left
    for _ in range(NOT_GENERATING_AFTER):
        budget.release(budget.hold(2.0, member="runs"))  # the target refused it: nothing generated
    budget.charge(budget.hold(20.0, member="chat"), 20.0)  # 60 - 20 >= embeddings' 30 + runs' one call (2)
    budget.hold(2.0, member="runs")  # and runs can still make its next call
    with pytest.raises(Exhausted):
        budget.hold(9.0, member="chat")  # 38 left - 9 < the 30 embeddings may claim


def test_a_member_claims_less_as_its_tests_end(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 100.0, shares={"contract": 1.0})
    budget.plan("contract", {"chat": 1, "embeddings": 3})  # 25 and 75
    budget.charge(budget.hold(25.0, member="chat"), 25.0)
    with pytest.raises(Exhausted):
        budget.hold(10.0, member="chat")  # embeddings may claim 75
    budget.finished("contract", "embeddings")
    budget.finished("contract", "embeddings")  # two of its three tests ended, nothing used
    budget.charge(budget.hold(45.0, member="chat"), 45.0)  # 75 - 45 >= the 25 of its last test
    with pytest.raises(Exhausted):
        budget.hold(10.0, member="chat")


def test_a_pool_whose_tests_ended_gives_what_it_left(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 100.0)  # contract 60, scenarios 40
    budget.plan("scenarios", {"scenarios": 2})
    budget.charge(budget.hold(10.0, "scenarios", "scenarios"), 10.0)
    budget.hold(60.0, "contract")
    with pytest.raises(Exhausted, match="contract"):
        budget.hold(10.0, "contract")  # a scenario has not ended: the pool keeps its share
    budget.finished("scenarios", "scenarios")
    budget.finished("scenarios", "scenarios")
    budget.hold(30.0, "contract")  # the 30 the scenarios left
    with pytest.raises(Exhausted):
        budget.hold(1.0, "contract")


def test_a_member_with_more_tests_is_sure_of_more(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 100.0, shares={"scenarios": 1.0})
    budget.plan("scenarios", {"chat": 3, "models": 1})  # 75 and 25
    budget.charge(budget.hold(70.0, "scenarios", "chat"), 70.0)
    with pytest.raises(Exhausted):
        budget.hold(6.0, "scenarios", "chat")
    budget.hold(25.0, "scenarios", "models")


def test_a_member_refused_for_its_part_waits_for_its_own_calls_in_flight(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 100.0, shares={"contract": 1.0})
    budget.plan("contract", {"chat": 1, "runs": 1})
    flight = budget.hold(45.0, member="chat")
    releaser = threading.Timer(0.3, budget.release, args=(flight,))
    releaser.start()
    budget.hold(45.0, member="chat")  # waits for the first to come back instead of being refused
    releaser.join()
    assert budget.members("contract")["chat"] == (pytest.approx(45.0), 0)


def test_fuzzed_unicode_is_held_at_a_token_a_byte(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 100.0)
    plain = budget.estimate({"model": MODEL, "messages": [{"role": "user", "content": "a" * 40}]}, MODEL, CHAT)
    wide = budget.estimate({"model": MODEL, "messages": [{"role": "user", "content": "\U0001f600" * 40}]}, MODEL, CHAT)
    assert wide > plain  # 40 emoji are 160 bytes: a byte-level tokenizer may make 160 tokens of them


def test_a_generating_operation_without_facts_is_held_at_the_worst_case(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 1e9)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    known = budget.estimate(body, MODEL, CHAT)
    # Unknown facts: the cap is not trusted and the model may be the dearest one.
    worst = budget.estimate(body, MODEL, WORST)
    dearest = max((m for m in load().models if m.task == "text-generation"), key=lambda m: m.price.output)
    assert worst >= dearest.neurons(0, dearest.context_window or 0) > 100 * known


def test_both_limits_given_the_larger_is_held(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "b.sqlite3", 1e9)
    small = budget.estimate({"model": MODEL, "max_tokens": 4}, MODEL, CHAT)
    both = budget.estimate({"model": MODEL, "max_tokens": 4, "max_completion_tokens": 400}, MODEL, CHAT)
    assert both == budget.estimate({"model": MODEL, "max_tokens": 400}, MODEL, CHAT) > small
