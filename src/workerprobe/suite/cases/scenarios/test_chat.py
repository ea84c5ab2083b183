"""Chat through the official SDK against the target: plain, streamed, tools, JSON mode."""

from __future__ import annotations

import json

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL
from workerprobe.suite.target import Target

# Level of every test here unless it says otherwise: MUST (an official client breaks).
pytestmark = [pytest.mark.must, pytest.mark.family("chat")]

QUESTION = [{"role": "user", "content": "What is 3 * 10? Answer briefly."}]


def test_plain(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=24)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.completion_tokens <= 24


def test_streamed(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=QUESTION, max_tokens=24, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_truncation_is_reported(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        max_tokens=8,
        messages=[{"role": "user", "content": "Write a very long essay of at least 3000 words about Rome"}],
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 8
    assert completion.choices[0].finish_reason == "length"


@pytest.mark.should
def test_streamed_text_equals_plain_text_for_one_seed(client: openai.OpenAI, target: Target) -> None:
    if not target.emulated:
        pytest.skip("a deployed model need not give the same text for a seed; runs when the upstream is the emulator")
    kwargs = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "Describe a harbour"}],
        "seed": 42,
        "temperature": 0.7,
        "max_tokens": 40,
    }
    plain = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    chunks = client.chat.completions.create(**kwargs, stream=True)  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain


@pytest.mark.asyncio(loop_scope="function")
async def test_async_plain_and_streamed(async_client: openai.AsyncOpenAI) -> None:
    completion = await async_client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=24)
    assert completion.choices[0].message.content
    stream = await async_client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=24, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tool_call(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=64,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = (choice.message.tool_calls or [])[0]
    assert call.id and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)


def test_json_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        max_tokens=64,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give a city and its country as JSON."}],
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_temperature_zero_is_greedy(client: openai.OpenAI, target: Target) -> None:
    if not target.emulated:
        pytest.skip("a deployed model need not decode greedily at temperature 0; runs on the emulator")
    texts = {
        client.chat.completions.create(
            model=CHAT_MODEL, temperature=0, max_tokens=40, messages=[{"role": "user", "content": "Describe a river"}]
        )
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(texts) == 1


def test_split_upstream_events_lose_no_token(client: openai.OpenAI, target: Target) -> None:
    if not target.emulated:
        pytest.skip("needs the emulator's split-events fault (embedded, or WORKERPROBE_TARGET_UPSTREAM=emulator)")
    kwargs = {
        "model": CHAT_MODEL,
        "seed": 7,
        "temperature": 0.5,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "Describe a harbour EMULATE_FAULT:split-events"}],
    }
    plain = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    chunks = client.chat.completions.create(**kwargs, stream=True)  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain
