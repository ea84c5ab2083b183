"""The seven cases of the Open Responses compliance tests (openresponses/openresponses,
`src/lib/compliance-tests.ts`, run by `bin/compliance-test.ts` with Bun; read 2026-12-07), written
here from that source because the suite cannot fetch and run it where it runs: basic response,
streaming, system prompt, tool calling plain and streamed, image input, multi-turn. Each response
must hold the fields Open Responses' `ResponseResource` requires and, where the case says so, have
`status: completed`; a streamed case must carry events and end with the final response; the
streamed tool call must show its item added, its arguments' delta and done, and its item done.

Two changes from the source: every case sets `max_output_tokens: 64`, so that a deployed Worker's
run stays within its neuron budget (the answers asked for are a few words); the image case is not
run when the suite's chat model is one the catalogue knows to take text only.

SHOULD: the OpenAI SDKs build these objects without validating them; clients that validate against
the Open Responses schema (its own tester, and gateways that adopted it) reject what breaks it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from workerprobe import sse
from workerprobe.catalogue import load as load_catalogue
from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL
from workerprobe.suite.reporting import Exchanges
from workerprobe.suite.target import Target

pytestmark = [pytest.mark.should, pytest.mark.family("responses")]

# ResponseResource's required fields (schema/components/schemas/ResponseResource.json) and which of
# them the schema allows to be null.
REQUIRED = (
    "id object created_at completed_at status incomplete_details model previous_response_id instructions output "
    "error tools tool_choice truncation parallel_tool_calls text top_p presence_penalty frequency_penalty "
    "top_logprobs temperature reasoning user usage max_output_tokens max_tool_calls store background "
    "service_tier metadata safety_identifier prompt_cache_key"
).split()
NULLABLE = {
    "completed_at", "incomplete_details", "previous_response_id", "instructions", "error", "reasoning", "user",
    "usage", "max_output_tokens", "max_tool_calls", "safety_identifier", "prompt_cache_key",
}  # fmt: skip
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
# A red heart icon on a white background, 32 x 32 (the source's image)
HEART = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAABmklEQVR42tyWAaTyUBzFew/eG4AHz+"
    "MBSAHKBiJRGFKwIgQQJKLUIioBIhCAiCAAEizAQIAECaASqFFJq84nudjnaqvuPnxzgP9xfrq5938csPn7PwHTKSoViCIEAYEAMh"
    "moKsU2mUCWEQqB5xEMIp/HaGQG2G6RSuH9HQ7H34rFrtPbdz4jl6PbwmEsl3QA1mt4vcRKk8dz9eg6IpF7tt9fzGY0gCgafFRFo5"
    "Blc5vLhf3eCOj1yNhM5GRMVK0aATxPZoz09YXjkQDmczJgquGQAPp9WwCNBgG027YACgUC6HRsAZRKBDAY2AJoNv/ZnwzA6WSczn"
    "G3p4UAymXGAEkyXrTFAh8fLAGqagQAyGaZpYsi7bHTNPz8MEj//LxuFPo+UBS8vb0KaLXubrRa7aX0RMLCykwmn0z3+XA4WACcTp"
    "Ckh9MFAZpmuVXo+mO/w+/HZvNgbblcUCxaSo/Hyck80Yu6XXDcvfVZr79cvMZjuN2U9O9vKAqjZrfbIZ0mV4TUi9Xqz6jddNy//7"
    "+e3n8Fhf/Llo2kxi8AQyGRoDkmAhAAAAAASUVORK5CYII="
)


def _message(role: str, content: Any) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "basic-response": ({"input": [_message("user", "Say hello in exactly 3 words.")]}, False),
    "streaming-response": ({"input": [_message("user", "Count from 1 to 5.")]}, True),
    "system-prompt": (
        {
            "input": [
                _message("system", "You are a pirate. Always respond in pirate speak."),
                _message("user", "Say hello."),
            ]
        },
        False,
    ),
    "tool-calling": (
        {"input": [_message("user", "What's the weather like in San Francisco?")], "tools": [WEATHER]},
        False,
    ),
    "tool-calling-streaming": (
        {"input": [_message("user", "What's the weather like in San Francisco?")], "tools": [WEATHER]},
        True,
    ),
    "image-input": (
        {
            "input": [
                _message(
                    "user",
                    [
                        {"type": "input_text", "text": "What do you see in this image? Answer in one sentence."},
                        {"type": "input_image", "image_url": HEART},
                    ],
                )
            ]
        },
        False,
    ),
    "multi-turn": (
        {
            "input": [
                _message("user", "My name is Alice."),
                _message("assistant", "Hello Alice! Nice to meet you. How can I help you today?"),
                _message("user", "What is my name?"),
            ]
        },
        False,
    ),
}
COMPLETED = {"basic-response", "streaming-response", "system-prompt", "image-input", "multi-turn"}


def _schema_errors(response: Any) -> list[str]:
    if not isinstance(response, dict):
        return [f"the response is not an object: {str(response)[:120]}"]
    errors = [f"{name}: required" for name in REQUIRED if name not in response]
    errors += [
        f"{name}: null" for name in REQUIRED if name in response and response[name] is None and name not in NULLABLE
    ]
    if response.get("object") != "response":
        errors.append(f"object: {response.get('object')!r}, not 'response'")
    for i, item in enumerate(response.get("output") or []):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            errors.append(f"output.{i}: an item without a type")
    return errors


def _stream(client: httpx.Client, body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """The events of a streamed response, and its final response (the terminal event's)."""
    decoder, events = sse.Decoder(), []
    with client.stream("POST", "responses", json=body) as answer:
        assert answer.status_code == 200, f"HTTP {answer.status_code}: {answer.read()[:300]!r}"
        for chunk in answer.iter_bytes():
            events += decoder.feed(chunk)
    parsed = []
    for event in events + decoder.close():
        if event.data == "[DONE]":
            continue
        data = orjson.loads(event.data)
        if isinstance(data, dict):
            parsed.append(data)
    final = next(
        (
            e.get("response")
            for e in reversed(parsed)
            if e.get("type") in ("response.completed", "response.incomplete", "response.failed")
        ),
        None,
    )
    return parsed, final


@pytest.mark.parametrize("case", list(CASES))
def test_open_responses_case(case: str, target: Target, exchanges: Exchanges) -> None:
    request, streaming = CASES[case]
    known = load_catalogue().model(CHAT_MODEL)
    if case == "image-input" and known is not None and not known.vision:
        pytest.skip(
            f"the chat model {CHAT_MODEL} takes text only (the catalogue); WORKERPROBE_CHAT_MODEL names another"
        )
    body = {"model": CHAT_MODEL, **request, "max_output_tokens": 64, "stream": streaming}
    with exchanges.client(
        base_url=target.v1 + "/", headers={"Authorization": f"Bearer {target.api_key}"}, timeout=60
    ) as client:
        if streaming:
            events, response = _stream(client, body)
            assert events, "no streaming events received"
        else:
            answer = client.post("responses", json=body)
            assert answer.status_code == 200, f"HTTP {answer.status_code}: {answer.text[:300]}"
            events, response = [], answer.json()
    errors = _schema_errors(response)
    assert not errors, f"not an Open Responses ResponseResource: {errors[:8]}"
    if case in COMPLETED:
        assert response["status"] == "completed", f"expected status completed, got {response['status']!r}"
    if case in ("tool-calling", "tool-calling-streaming"):
        assert any(item.get("type") == "function_call" for item in response["output"]), "no function_call output item"
    if case == "tool-calling-streaming":
        kinds = [e.get("type") for e in events]
        calls = [e for e in events if (e.get("item") or {}).get("type") == "function_call"]
        missing = [
            what
            for what, seen in (
                (
                    "output_item.added with a function_call",
                    any(e["type"] == "response.output_item.added" for e in calls),
                ),
                ("function_call_arguments.delta", "response.function_call_arguments.delta" in kinds),
                ("function_call_arguments.done", "response.function_call_arguments.done" in kinds),
                ("output_item.done with a function_call", any(e["type"] == "response.output_item.done" for e in calls)),
            )
            if not seen
        ]
        assert not missing, f"missing events: {missing}"
    elif response.get("output") == []:
        pytest.fail("the response has no output items")
