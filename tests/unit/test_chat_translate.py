"""OpenAI <-> Workers AI translation, as pure functions (no server)."""

from __future__ import annotations

import pytest

from workerprobe.catalogue import load as load_catalogue
from workerprobe.gateway.chat.generation import Caller, Generation
from workerprobe.gateway.chat.protocol import ChatCompletionRequest
from workerprobe.gateway.chat.translate import (
    cut_at_stop,
    event_parts,
    finish_reason,
    generation_of,
    normalise,
)
from workerprobe.gateway.errors import BadRequest

MODEL = load_catalogue().default("text-generation").name


def workers_ai_body(request: ChatCompletionRequest, max_tokens: int | None) -> tuple[dict[str, object], list[str]]:
    """The upstream body and stop sequences of a chat request, through the chat core's request."""
    generation = generation_of(request, Caller())
    return generation.upstream_body(max_tokens), list(generation.stops)


def _request(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_the_body_keeps_what_workers_ai_takes() -> None:
    request = _request(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        temperature=0,
        seed=2**40,
        stop="\n\n",
    )
    body, stops = workers_ai_body(request, 64)
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 64 and body["temperature"] == 0  # 0 stays greedy, never dropped
    assert 1 <= body["seed"] <= 9_999_999_999 and stops == ["\n\n"]
    assert "stop" not in body  # applied by the gateway


def test_tool_choice_none_sends_no_tools_and_json_schema_is_unwrapped() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body, _ = workers_ai_body(_request(tools=[tool], tool_choice="none"), None)
    assert "tools" not in body and "max_tokens" not in body
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body, _ = workers_ai_body(_request(response_format=fmt), None)
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"n": 2}, "n"), ({"logit_bias": {"1": -100}}, "logit_bias"), ({"logprobs": True}, "logprobs")],
)
def test_what_workers_ai_cannot_do_is_refused_not_dropped(fields: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequest) as refused:
        workers_ai_body(_request(**fields), None)
    assert refused.value.param == param


def test_results_of_either_shape() -> None:
    native = {"response": "4", "tool_calls": [{"name": "f", "arguments": {"x": 1}}], "usage": {"completion_tokens": 1}}
    text, calls, usage, finish = normalise(native)
    assert text == "4" and usage == {"completion_tokens": 1} and finish is None
    assert calls[0]["function"] == {"name": "f", "arguments": '{"x":1}'}  # arguments as a JSON string
    shaped = {"choices": [{"message": {"content": {"a": 1}}, "finish_reason": "length"}]}
    assert normalise(shaped)[0] == '{"a":1}' and normalise(shaped)[3] == "length"
    assert event_parts({"response": "he", "usage": None})[0] == "he"
    assert event_parts({"choices": [{"delta": {"content": "x"}, "finish_reason": None}]})[0] == "x"


def test_finish_reasons_and_stops() -> None:
    assert finish_reason([{"id": "c"}], stopped=False, cut=True) == "tool_calls"
    assert finish_reason([], stopped=True, cut=True) == "stop"
    assert finish_reason([], stopped=False, cut=True) == "length"
    assert cut_at_stop("a. b. c", [". c", "b"]) == ("a. ", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)


def test_the_core_request_is_the_same_whichever_family_made_it() -> None:
    """A run's model call (built as a Generation) reaches the upstream as the chat request that
    asks the same does."""
    chat = generation_of(
        _request(
            messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            temperature=0.5,
            max_completion_tokens=9,
        ),
        Caller("k"),
    )
    run = Generation(
        model=MODEL,
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        max_tokens=9,
        temperature=0.5,
        caller=Caller("k"),
    )
    assert chat.upstream_body(9) == run.upstream_body(9)
    assert chat.caller == run.caller and chat.id_prefix == run.id_prefix == "chatcmpl-"
