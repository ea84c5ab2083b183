"""Bad input, unknown and retired models, auth and body size: Cloudflare's codes and messages."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.conftest import TEXT_MODEL, Emulator, error_of

ONE_OF_ZERO = (
    "AiError: Bad input: Error: oneOf at '/' not met, 0 matches: required properties at '/' are "
    "'prompt', required properties at '/' are 'messages'"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, ONE_OF_ZERO),
        ({"prompt": "a", "messages": []}, "AiError: Bad input: Error: oneOf at '/' not met, 2 matches"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            "AiError: Bad input: Error: Type mismatch of '/messages/0/content', 'array' not in 'string'",
        ),
        ({"prompt": 5}, "AiError: Bad input: Error: Type mismatch of '/prompt', 'integer' not in 'string'"),
        ({"prompt": ""}, "AiError: Bad input: Error: String at '/prompt' is shorter than minLength 1"),
        (
            {"prompt": "a", "temperature": 5.5},
            "AiError: Bad input: Error: Value at '/temperature' is 5.5, greater than maximum 5",
        ),
        ({"prompt": "a", "top_k": 0}, "AiError: Bad input: Error: Value at '/top_k' is 0, less than minimum 1"),
        ({"prompt": "a", "seed": 0}, "AiError: Bad input: Error: Value at '/seed' is 0, less than minimum 1"),
        (
            {"prompt": "a", "max_tokens": "ten"},
            "AiError: Bad input: Error: Type mismatch of '/max_tokens', 'string' not in 'integer'",
        ),
        (
            {"prompt": "a", "repetition_penalty": 2.5},
            "AiError: Bad input: Error: Value at '/repetition_penalty' is 2.5, greater than maximum 2",
        ),
        (
            {"messages": [{"content": "hi"}]},
            "AiError: Bad input: Error: required properties at '/messages/0' are 'role'",
        ),
        ([1, 2], "AiError: Bad input: Error: Type mismatch of '/', 'array' not in 'object'"),
    ],
)
def test_bad_input_is_400_5006(emulator: Emulator, body: object, message: str) -> None:
    assert error_of(emulator.run(TEXT_MODEL, body)) == (400, 5006, message)


def test_top_p_accepts_both_documented_ranges(emulator: Emulator) -> None:
    assert emulator.run(TEXT_MODEL, {"prompt": "a", "top_p": 1.5}).status_code == 200
    assert emulator.run(TEXT_MODEL, {"prompt": "a", "top_p": 2.5}).status_code == 400


def test_array_content_accepted_by_openai_input_models(emulator: Emulator) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]}]}
    result = emulator.run("@cf/zai-org/glm-4.7-flash", body).json()["result"]
    assert result["choices"][0]["message"]["content"] == "2 + 2 = 4."


def test_assistant_null_content_with_tool_calls_is_accepted(emulator: Emulator) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"name": "f", "arguments": {}}]},
            {"role": "tool", "content": "{}"},
        ]
    }
    assert emulator.run(TEXT_MODEL, body).status_code == 200


def test_malformed_json(emulator: Emulator) -> None:
    response = emulator.http.post(
        emulator.path("acct", f"run/{TEXT_MODEL}"), content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    status, code, message = error_of(response)
    assert (status, code) == (400, 5006) and "Malformed JSON" in message


def test_unknown_model(emulator: Emulator) -> None:
    assert error_of(emulator.run("@cf/meta/llama-9-unknown", {"prompt": "a"})) == (
        400,
        5007,
        "No such model @cf/meta/llama-9-unknown or task",
    )


@pytest.mark.parametrize(
    "model",
    [
        "@cf/meta/llama-3-8b-instruct",
        "@cf/mistral/mistral-7b-instruct-v0.1",
        "@hf/mistral/mistral-7b-instruct-v0.2",
        "@cf/meta/llama-3.1-8b-instruct",
    ],
)
def test_retired_models_answer_410_5028(emulator: Emulator, model: str) -> None:
    status, code, message = error_of(emulator.run(model, {"prompt": "a"}))
    assert (status, code) == (410, 5028)
    assert message == "AiError: 5028: This model was deprecated on 2026-05-30. Please use an alternative model"


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_authentication_error(emulator: Emulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=emulator.url) as client:
        response = client.post(emulator.path("acct", f"run/{TEXT_MODEL}"), json={"prompt": "a"}, headers=headers)
    assert error_of(response) == (401, 10000, "Authentication error")


def test_any_token_when_none_is_configured(start_emulator) -> None:
    with start_emulator(CF_API_TOKEN="") as emulator:
        response = httpx.post(
            emulator.url + emulator.path("a", f"run/{TEXT_MODEL}"),
            json={"prompt": "a"},
            headers={"Authorization": "Bearer anything"},
        )
        assert response.status_code == 200


def test_request_too_large(start_emulator) -> None:
    with start_emulator(WORKERPROBE_EMULATOR_MAX_BODY_BYTES="1000") as emulator:
        assert error_of(emulator.run(TEXT_MODEL, {"prompt": "x" * 2000})) == (413, 3006, "Request is too large")
        assert emulator.run(TEXT_MODEL, {"prompt": "x" * 100}).status_code == 200


def test_unknown_route_and_method(emulator: Emulator) -> None:
    assert error_of(emulator.http.get("/client/v4/accounts/a/ai/nothing")) == (400, 7000, "No route for that URI")
    assert error_of(emulator.http.get(emulator.path("a", f"run/{TEXT_MODEL}")))[:2] == (405, 7001)
