"""SDK clients for the target under test, and the models the scenarios use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from workerprobe.suite.budget import Budget, Exhausted
from workerprobe.suite.reporting import Exchanges
from workerprobe.suite.target import Target

# A deployed Worker may serve other models: override with these variables.
CHAT_MODEL = os.environ.get("WORKERPROBE_CHAT_MODEL", "@cf/meta/llama-3.1-8b-instruct-fast")
EMBEDDING_MODEL = os.environ.get("WORKERPROBE_EMBEDDING_MODEL", "@cf/baai/bge-base-en-v1.5")


# What one scenario may spend at most: about two short chat calls.
SCENARIO_ESTIMATE = {"messages": "x" * 200, "max_tokens": 2 * 64}


@pytest.fixture(autouse=True)
def neuron_budget(target: Target, budget: Budget) -> None:
    """Against a deployed target, a scenario runs only while the budget covers its worst case."""
    if target.emulated:
        return
    try:
        budget.reserve(SCENARIO_ESTIMATE, CHAT_MODEL)
    except Exhausted as exc:
        pytest.skip(str(exc))


@pytest.fixture()
def exchanges() -> Exchanges:
    """The last requests and responses of the test's clients (attached to Allure on failure)."""
    return Exchanges()


@pytest.fixture()
def client(target: Target, exchanges: Exchanges) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=target.v1,
        api_key=target.api_key,
        max_retries=0,
        timeout=60,
        http_client=exchanges.client(timeout=60),
    ) as client:
        yield client


@pytest.fixture()
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
