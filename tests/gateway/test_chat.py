"""Chat Completions through the official `openai` SDK, plain and streamed, sync and async."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.gateway.conftest import CHAT_MODEL, Gateway
from workerprobe import tokens
from workerprobe.sse import Decoder

LONG = "Write a very long essay of at least 3000 words about Rome"


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_plain_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=_user("What is 3 * 10?"))
    assert completion.object == "chat.completion"
    assert completion.model == CHAT_MODEL
    (choice,) = completion.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content == "3 * 10 = 30."
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6


def test_default_limit_is_reported_as_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=_user(LONG))
    assert completion.usage is not None and completion.usage.completion_tokens == 256
    assert completion.choices[0].finish_reason == "length"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_forwarded(client: openai.OpenAI, field: str) -> None:
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=_user(LONG), **{field: 17})
    assert completion.usage is not None and completion.usage.completion_tokens == 17
    assert tokens.count(completion.choices[0].message.content or "") == 17
    assert completion.choices[0].finish_reason == "length"


def test_content_parts_and_developer_role(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is 7 + 5?"}]},
        ],
    )
    assert completion.choices[0].message.content == "7 + 5 = 12."


def test_image_parts_are_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
            ],
        )
    assert caught.value.body["param"] == "messages.[0].content.[0].type"  # type: ignore[index]


def test_seed_and_temperature_zero_are_deterministic(client: openai.OpenAI) -> None:
    def text(**kw: object) -> str:
        c = client.chat.completions.create(model=CHAT_MODEL, messages=_user("Describe a valley"), **kw)
        return c.choices[0].message.content or ""

    assert text(seed=5, temperature=0.8) == text(seed=5, temperature=0.8)
    assert text(seed=5, temperature=0.8) != text(seed=6, temperature=0.8)
    assert text(temperature=0, seed=1) == text(temperature=0, seed=2)
    assert text(seed=0, temperature=0.8) == text(seed=0, temperature=0.8)  # 0 is folded into range


def test_n_above_one_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=CHAT_MODEL, messages=_user("hi"), n=2)
    assert caught.value.body["param"] == "n"  # type: ignore[index]


def test_stop_sequence(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=_user("What is 3 * 10?"), stop=[" ="])
    assert completion.choices[0].message.content == "3 * 10"
    assert completion.choices[0].finish_reason == "stop"
    whole = client.chat.completions.create(model=CHAT_MODEL, messages=_user("What is 3 * 10?"))
    assert completion.usage is not None and whole.usage is not None
    # The tokens returned, not the whole upstream generation the stop sequence cut.
    assert completion.usage.completion_tokens == tokens.count("3 * 10") < whole.usage.completion_tokens
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=_user("What is 3 * 10?"),
        stop=" =",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "3 * 10"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == tokens.count("3 * 10")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tool_calls(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=_user("What is the weather in Oslo?"), tools=[WEATHER]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    follow_up = client.chat.completions.create(
        model=CHAT_MODEL,
        tools=[WEATHER],
        messages=[
            *_user("What is the weather in Oslo?"),
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 3}'},
        ],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.content


def test_tool_calls_streamed(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=_user("What is the weather in Oslo?"), tools=[WEATHER], stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_choice_none_drops_tools(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=_user("What is the weather in Oslo?"), tools=[WEATHER], tool_choice="none"
    )
    assert completion.choices[0].finish_reason == "stop" and not completion.choices[0].message.tool_calls


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            },
        },
    ],
)
def test_json_mode_content_is_a_json_string(client: openai.OpenAI, response_format: dict) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=_user("A city as JSON"), response_format=response_format
    )  # type: ignore[arg-type]
    value = json.loads(completion.choices[0].message.content or "")
    assert isinstance(value, dict) and value


def test_stream_invariants_and_equal_text(client: openai.OpenAI) -> None:
    kwargs = {"model": CHAT_MODEL, "messages": _user("Tell me about a harbour"), "seed": 9, "temperature": 0.7}
    plain = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(
            **kwargs,
            stream=True,  # type: ignore[call-overload]
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=CHAT_MODEL, messages=_user("hi"), stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_streamed_length_finish(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=CHAT_MODEL, messages=_user(LONG), stream=True, max_tokens=30))
    assert chunks[-1].choices[0].finish_reason == "length"


def _raw_stream(gateway: Gateway, content: str, **extra: object) -> list[str]:
    body = {"model": CHAT_MODEL, "messages": _user(content), "stream": True, "max_tokens": 40, **extra}
    decoder = Decoder()
    events = []
    with gateway.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            events.extend(decoder.feed(chunk))
    return [e.data for e in events]


def test_raw_stream_ends_with_done_and_never_leaks_padding(gateway: Gateway) -> None:
    events = _raw_stream(gateway, LONG)
    assert events[-1] == "[DONE]"
    for data in events[:-1]:
        chunk = json.loads(data)
        assert "p" not in chunk and "response" not in chunk


@pytest.mark.parametrize("fault", ["cut-stream", "malformed-event"])
def test_mid_stream_upstream_error_becomes_an_error_event(gateway: Gateway, fault: str) -> None:
    events = _raw_stream(gateway, f"{LONG} EMULATE_FAULT:{fault}")
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and error["code"] == "upstream_error"
    assert error["message"]


def test_sdk_raises_on_mid_stream_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model=CHAT_MODEL, messages=_user(f"{LONG} EMULATE_FAULT:cut-stream"), stream=True
            )
        )


def test_keepalive_pings_during_a_stall(gateway: Gateway) -> None:
    body = {
        "model": CHAT_MODEL,
        "messages": _user(f"{LONG} EMULATE_FAULT:slow-stream"),
        "stream": True,
        "max_tokens": 10,
    }
    raw = b""
    with gateway.http.stream("POST", "/v1/chat/completions", json=body, timeout=30) as response:
        for chunk in response.iter_raw():
            raw += chunk
    assert b": ping\n\n" in raw  # the emulator stalls 3 s; the gateway pings every 0.2 s
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_async_client_plain_and_streamed(gateway: Gateway) -> None:
    client = gateway.async_client()
    completion = await client.chat.completions.create(model=CHAT_MODEL, messages=_user("What is 9 - 4?"))
    assert completion.choices[0].message.content == "9 - 4 = 5."
    stream = await client.chat.completions.create(model=CHAT_MODEL, messages=_user("What is 9 - 4?"), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "9 - 4 = 5."
    await client.close()


def test_newer_models_openai_shaped_upstream(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="@cf/google/gemma-4-26b-a4b-it", messages=_user(LONG), max_tokens=12
    )
    assert completion.choices[0].finish_reason == "length"
    assert tokens.count(completion.choices[0].message.content or "") == 12
    chunks = list(
        client.chat.completions.create(
            model="@cf/zai-org/glm-4.7-flash",
            messages=_user(LONG),
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12  # not the incremental sum twice
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert tokens.count(text) == 12


def test_request_id_header(gateway: Gateway) -> None:
    response = gateway.http.get("/v1/models", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert httpx.get(f"{gateway.url}/v1/models").headers["x-request-id"]
