"""SDK clients for the target under test, and the models the scenarios use.

Every exchange of a scenario's clients is seen by a hook: it is booked under the operation it hit
(evidence for the matrix), what it creates goes to the ledger (deleted at the end of the run),
and what it generates is charged to the run's budget from its `usage`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from workerprobe.suite import bounds
from workerprobe.suite.budget import Budget, Exhausted, Hold
from workerprobe.suite.findings import BUDGET, RUN_OVER
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.reporting import Exchanges
from workerprobe.suite.shares import SCENARIO_HOLD
from workerprobe.suite.spend import ScenarioSpend
from workerprobe.suite.target import Target, chat_model, embedding_model

# A deployed Worker may serve other models: WORKERPROBE_CHAT_MODEL, WORKERPROBE_EMBEDDING_MODEL.
CHAT_MODEL = chat_model()
EMBEDDING_MODEL = embedding_model()


def hold_or_skip(budget: Budget | None, neurons: float) -> Hold | None:
    """Hold a scenario's worst case in the scenarios' share of the budget, or skip it (not run);
    no scenario starts once the run's deadline passed."""
    if bounds.remaining() <= 0:
        pytest.skip(f"not run: {RUN_OVER}")
    if budget is None:
        return None
    try:
        return budget.hold(neurons, "scenarios")
    except Exhausted as exc:
        pytest.skip(f"{exc} [{BUDGET}]")


@pytest.fixture()
def spend(target: Target, budget: Budget | None, ledger: Ledger | None) -> Iterator[ScenarioSpend]:
    """Against a deployed target, a scenario runs only while the budget can hold it."""
    hold = hold_or_skip(budget, SCENARIO_HOLD)
    tracker = ScenarioSpend(budget, CHAT_MODEL, ledger)
    yield tracker
    if budget is not None and hold is not None:
        tracker.settle(hold)


@pytest.fixture()
def exchanges(spend: ScenarioSpend) -> Exchanges:
    """The last requests and responses of the test's clients (attached to Allure on failure)."""
    return Exchanges(on_response=spend.seen)


def _http(exchanges: Exchanges, **kwargs: Any) -> httpx.Client:
    return exchanges.client(timeout=60, **kwargs)


@pytest.fixture()
def client(target: Target, exchanges: Exchanges) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=target.v1, api_key=target.api_key, max_retries=0, timeout=60, http_client=_http(exchanges)
    ) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="function")  # strict mode too (a project's default)
async def async_client(target: Target, exchanges: Exchanges) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=target.v1,
        api_key=target.api_key,
        max_retries=0,
        timeout=60,
        http_client=exchanges.async_client(timeout=60),
    )
    yield client
    await client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.when == "call" and report.failed and "exchanges" in getattr(item, "funcargs", {}):
        item.funcargs["exchanges"].attach()
    return report
