"""Text generation on /ai/run: envelope, usage, truncation, determinism, tools, JSON mode."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.emulator.conftest import TEXT_MODEL, Emulator, error_of
from workerprobe import tokens

LONG = "Write a very long essay of at least 3000 words about Rome"
SHORT = "What is 3 * 10?"


def _user(text: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


def test_envelope_and_usage_agree_with_text(emulator: Emulator) -> None:
    response = emulator.run(TEXT_MODEL, _user("Tell me about harbours"), account="gen-1")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    result = body["result"]
    assert set(result) == {"response", "tool_calls", "usage"}
    assert result["tool_calls"] == []
    usage = result["usage"]
    assert usage["completion_tokens"] == tokens.count(result["response"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > tokens.count("Tell me about harbours")


def test_long_request_is_cut_at_the_default_256_tokens(emulator: Emulator) -> None:
    result = emulator.run(TEXT_MODEL, _user(LONG)).json()["result"]
    assert result["usage"]["completion_tokens"] == 256
    assert tokens.count(result["response"]) == 256


def test_short_question_ends_naturally(emulator: Emulator) -> None:
    result = emulator.run(TEXT_MODEL, _user(SHORT)).json()["result"]
    assert result["response"] == "3 * 10 = 30."
    assert result["usage"]["completion_tokens"] < 256


def test_max_tokens_is_honoured_and_prefix_stable(emulator: Emulator) -> None:
    body = {**_user(LONG), "temperature": 0}
    full = emulator.run(TEXT_MODEL, {**body, "max_tokens": 300}).json()["result"]
    cut = emulator.run(TEXT_MODEL, {**body, "max_tokens": 40}).json()["result"]
    assert full["usage"]["completion_tokens"] == 300
    assert cut["usage"]["completion_tokens"] == 40
    assert full["response"].startswith(cut["response"])


def test_prompt_branch(emulator: Emulator) -> None:
    result = emulator.run(TEXT_MODEL, {"prompt": SHORT}).json()["result"]
    assert result["response"] == "3 * 10 = 30."


def test_same_seed_same_text_other_seed_other_text(emulator: Emulator) -> None:
    body = {**_user("Describe a mountain village"), "temperature": 0.7}
    a = emulator.run(TEXT_MODEL, {**body, "seed": 11}).json()["result"]["response"]
    b = emulator.run(TEXT_MODEL, {**body, "seed": 11}).json()["result"]["response"]
    c = emulator.run(TEXT_MODEL, {**body, "seed": 12}).json()["result"]["response"]
    assert a == b
    assert a != c


def test_temperature_zero_is_greedy(emulator: Emulator) -> None:
    body = {**_user("Describe a river"), "temperature": 0}
    assert (
        emulator.run(TEXT_MODEL, {**body, "seed": 1}).json()["result"]["response"]
        == emulator.run(TEXT_MODEL, {**body, "seed": 2}).json()["result"]["response"]
    )


def test_unseeded_sampling_varies(emulator: Emulator) -> None:
    texts = {emulator.run(TEXT_MODEL, _user("Describe a forest")).json()["result"]["response"] for _ in range(4)}
    assert len(texts) > 1


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


def test_legacy_tool_calls(emulator: Emulator) -> None:
    body = {**_user("What is the weather in Paris?"), "tools": [WEATHER_TOOL]}
    result = emulator.run(TEXT_MODEL, body).json()["result"]
    assert "response" not in result
    assert result["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert result["usage"]["completion_tokens"] > 0


def test_openai_form_tool_calls(emulator: Emulator) -> None:
    body = {**_user("What is the weather in Paris?"), "tools": [{"type": "function", "function": WEATHER_TOOL}]}
    result = emulator.run("@cf/meta/llama-3.3-70b-instruct-fp8-fast", body).json()["result"]
    (call,) = result["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_no_tool_call_when_the_question_does_not_need_one(emulator: Emulator) -> None:
    body = {**_user(SHORT), "tools": [WEATHER_TOOL]}
    result = emulator.run(TEXT_MODEL, body).json()["result"]
    assert result["response"] == "3 * 10 = 30." and result["tool_calls"] == []


def test_answer_after_a_tool_result(emulator: Emulator) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
            },
            {"role": "tool", "content": '{"temp": 21}'},
        ],
        "tools": [WEATHER_TOOL],
    }
    result = emulator.run(TEXT_MODEL, body).json()["result"]
    assert result["tool_calls"] == [] and result["response"].startswith("Based on the tool result")


@pytest.mark.parametrize(
    ("response_format", "check"),
    [
        ({"type": "json_object"}, lambda v: isinstance(v["answer"], str)),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "population": {"type": "integer", "minimum": 1}},
                    "required": ["name", "population"],
                },
            },
            lambda v: isinstance(v["name"], str) and v["population"] >= 1,
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "city",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"capital": {"type": "boolean"}}},
                },
            },
            lambda v: isinstance(v["capital"], bool),
        ),
    ],
)
def test_json_mode_returns_an_object(emulator: Emulator, response_format: dict, check) -> None:
    body = {**_user("Give me a city as JSON"), "response_format": response_format}
    result = emulator.run(TEXT_MODEL, body).json()["result"]
    assert isinstance(result["response"], dict)
    assert check(result["response"])
    assert result["usage"]["completion_tokens"] == tokens.count(
        json.dumps(result["response"], separators=(",", ":"), ensure_ascii=False)
    )


def test_openai_shaped_result_of_newer_models(emulator: Emulator) -> None:
    result = emulator.run("@cf/google/gemma-4-26b-a4b-it", {**_user(LONG), "max_tokens": 20}).json()["result"]
    assert result["object"] == "chat.completion"
    (choice,) = result["choices"]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant"
    assert tokens.count(choice["message"]["content"]) == 20
    assert result["usage"]["completion_tokens"] == 20
    assert result["usage"]["neurons"] > 0
    assert result["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_newer_models_do_not_stop_at_256(emulator: Emulator) -> None:
    result = emulator.run("@cf/zai-org/glm-4.7-flash", _user(LONG)).json()["result"]
    assert result["usage"]["completion_tokens"] > 256


def test_prompt_over_the_context_window(emulator: Emulator) -> None:
    status, code, message = error_of(
        emulator.run("@cf/meta/llama-3.3-70b-instruct-fp8-fast", {"prompt": "word " * 25000})
    )
    assert (status, code) == (400, 5006)
    assert "context window of 24000" in message


def test_json_mode_that_cannot_be_met(emulator: Emulator) -> None:
    body = {**_user("a city"), "response_format": {"type": "json_schema", "json_schema": {"type": "tuple"}}}
    assert error_of(emulator.run(TEXT_MODEL, body)) == (400, 5024, "AiError: JSON Mode couldn't be met")


def test_known_long_text_continues_from_a_prefix(emulator: Emulator) -> None:
    ask = {"role": "user", "content": "Recite EMULATE_LONG_TEXT:600"}
    whole = _result(emulator.run(TEXT_MODEL, {"messages": [ask], "max_tokens": 1000}))
    assert whole["usage"]["completion_tokens"] == 600 and whole["response"].endswith(".")
    first = _result(emulator.run(TEXT_MODEL, {"messages": [ask], "temperature": 0.9}))
    assert first["usage"]["completion_tokens"] == 256  # the default cut, whatever the sampling
    assert whole["response"].startswith(first["response"])
    parts = [first["response"]]
    so_far = first["response"]
    for follow_up in ([], [{"role": "user", "content": "Continue exactly where you stopped."}]):
        body = {"messages": [ask, {"role": "assistant", "content": so_far}, *follow_up]}
        part = _result(emulator.run(TEXT_MODEL, body))["response"]
        parts.append(part)
        so_far += part
    assert "".join(parts) == whole["response"]  # nothing repeated, nothing missing
    unknown = {"messages": [ask, {"role": "assistant", "content": "Not a prefix of it."}], "max_tokens": 4}
    assert whole["response"].startswith(_result(emulator.run(TEXT_MODEL, unknown))["response"])


def _result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result
