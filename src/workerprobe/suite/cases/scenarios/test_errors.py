"""The SDK raises the right error class for what went wrong."""

from __future__ import annotations

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL
from workerprobe.suite.reporting import Exchanges
from workerprobe.suite.target import Target

# Level of every test here unless it says otherwise: MUST (an official client breaks).
pytestmark = [pytest.mark.must, pytest.mark.family("chat")]


@pytest.mark.family("chat")
def test_wrong_key(target: Target, exchanges: Exchanges) -> None:
    """On the route every Worker has (a model list is not everywhere): a wrong key is refused
    before anything is generated, as AuthenticationError."""
    wrong = {"api_key": "sk-workerprobe-wrong", "max_retries": 0, "http_client": exchanges.client(timeout=60)}
    with openai.OpenAI(base_url=target.v1, **wrong) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model=CHAT_MODEL, max_tokens=1, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.family("assistants")
def test_unknown_id(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve("asst_does_not_exist")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="@cf/nobody/no-such-model", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        )


def test_bad_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        # max_tokens: a Worker that accepts the bad value must not generate at length on the budget.
        client.chat.completions.create(
            model=CHAT_MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}], temperature=7
        )


@pytest.mark.parametrize("fault", ["3021", "3040", "4006"])
def test_rate_limits_raise_rate_limit_error(client: openai.OpenAI, target: Target, fault: str) -> None:
    if not target.emulated:
        pytest.skip("forcing a 429 from a deployed Worker would spend its real allocation")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": f"EMULATE_FAULT:{fault}"}]
        )
    if fault in ("3021", "3040"):  # transient: the client is told when to retry
        assert caught.value.response.headers.get("retry-after", "").isdigit()
