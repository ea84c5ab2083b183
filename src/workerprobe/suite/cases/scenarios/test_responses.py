"""The Responses and Conversations APIs through the official Python SDK (sync and async), as the
clients of late 2026 call them (the Agents SDK, Codex, most new code): plain and streamed responses,
multi-turn by `previous_response_id` and by conversation, instructions, a function-tool round trip,
structured output, `max_output_tokens`, `store: false`.

Behaviour probes ask the model for a word it can only give when what was sent reached it ("Answer
with exactly one word: otter"): a real model and the emulator both answer with it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL
from workerprobe.suite.target import Target

# Level of every test here unless it says otherwise: MUST (an official client breaks).
pytestmark = [pytest.mark.must, pytest.mark.family("responses")]

QUESTION = "What is 3 * 10? Answer briefly."
LONG = "Write a very long essay of at least 3000 words about the history of Rome."
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _word(word: str) -> str:
    return f"Answer with exactly one word: {word}"


def _said(text: str, word: str) -> bool:
    return word in text.lower()


def test_plain(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=32)
    assert response.object == "response" and response.id
    assert response.status in ("completed", "incomplete"), response.status
    assert response.output_text, "no output_text: the response has no message with output_text"
    assert response.usage is not None, "no usage: clients that count tokens get None"
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.output_tokens <= 32


def test_streamed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=32, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created", kinds[:3]
    assert [k for k in kinds if k in TERMINAL] == [kinds[-1]], f"terminal events: {[k for k in kinds if k in TERMINAL]}"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas and deltas == final.output_text, (deltas[:60], final.output_text[:60])
    assert final.id == events[0].response.id  # type: ignore[union-attr]


def test_stream_helper_returns_the_final_response(client: openai.OpenAI) -> None:
    """`client.responses.stream(...)`: the helper the Agents SDK's examples use; it raises unless the
    stream's events agree (one response id, items added before their deltas, a completed event)."""
    with client.responses.stream(model=CHAT_MODEL, input=_word("heron"), max_output_tokens=32) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert _said(final.output_text, "heron"), final.output_text[:80]


def test_max_output_tokens_reached_is_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input=LONG, max_output_tokens=16)
    assert response.usage is not None and response.usage.output_tokens <= 16
    assert response.status == "incomplete", f"a cut answer says status {response.status!r}, not 'incomplete'"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_instructions_reach_the_model(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=CHAT_MODEL, instructions=_word("kestrel"), input="Hello there.", max_output_tokens=32
    )
    assert _said(response.output_text, "kestrel"), f"the instructions were not followed: {response.output_text[:80]!r}"


def test_previous_response_id_is_not_silently_ignored(client: openai.OpenAI) -> None:
    """A server that cannot chain responses says so (4xx); one that answers without the earlier turn
    gives the client an answer to another conversation."""
    first = client.responses.create(model=CHAT_MODEL, input=_word("otter"), max_output_tokens=32)
    try:
        second = client.responses.create(
            model=CHAT_MODEL,
            previous_response_id=first.id,
            input="Which word did I ask you to answer with? Say it again.",
            max_output_tokens=32,
        )
    except openai.APIStatusError as refused:
        assert 400 <= refused.status_code < 500, refused.status_code
        return
    assert _said(second.output_text, "otter"), f"the earlier turn did not reach the model: {second.output_text[:80]!r}"


@pytest.mark.should
def test_previous_response_id_carries_the_context(client: openai.OpenAI) -> None:
    first = client.responses.create(model=CHAT_MODEL, input=_word("plover"), max_output_tokens=32)
    second = client.responses.create(
        model=CHAT_MODEL,
        previous_response_id=first.id,
        input="Which word did I ask you to answer with? Say it again.",
        max_output_tokens=32,
    )
    assert second.previous_response_id == first.id
    assert _said(second.output_text, "plover"), second.output_text[:80]


@pytest.mark.should
def test_a_stored_response_is_retrieved_listed_and_deleted(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=16)
    again = client.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == response.output_text
    items = client.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message"], [i.type for i in items.data]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.should
def test_store_false_is_not_retrievable(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=16, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_function_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model=CHAT_MODEL,
        input="What is the weather in Paris? Use the get_weather tool.",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls, f"no function_call item: {[o.type for o in first.output]}"
    call = calls[0]
    assert call.name == "get_weather" and call.call_id  # type: ignore[union-attr]
    assert isinstance(json.loads(call.arguments), dict)  # type: ignore[union-attr]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21}'}  # type: ignore[union-attr]
    history: Any = [*(o.model_dump(exclude_none=True) for o in first.output), output]
    second = client.responses.create(
        model=CHAT_MODEL,
        input=[{"role": "user", "content": "What is the weather in Paris?"}, *history],
        tools=[WEATHER],
        max_output_tokens=64,
    )
    assert second.output_text, "no answer after the tool's output"


def test_structured_output_is_parseable_json(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=CHAT_MODEL,
        input="Give a city and its country.",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
        max_output_tokens=64,
    )
    assert isinstance(json.loads(response.output_text), dict), response.output_text[:80]


@pytest.mark.asyncio(loop_scope="function")
async def test_async_create_and_stream(async_client: openai.AsyncOpenAI) -> None:
    plain = await async_client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=32)
    assert plain.output_text
    stream = await async_client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=32, stream=True)
    kinds = [event.type async for event in stream]
    assert kinds and kinds[-1] in TERMINAL, kinds[-3:]


@pytest.mark.should
def test_a_background_response_is_polled_and_cancelled(client: openai.OpenAI, target: Target) -> None:
    """`background: true`: the response comes back queued, is polled to its end, and one still
    running is cancelled. Against the emulator a request is made to wait a second upstream (its
    `busy` fault) so that there is something to cancel; elsewhere a long answer is."""
    queued = client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=32, background=True)
    assert queued.background and queued.status in ("queued", "in_progress", "completed"), queued.status
    current = queued
    for _ in range(300):  # the suite's bounds end a hung target first
        current = client.responses.retrieve(queued.id)
        if current.status not in ("queued", "in_progress"):
            break
        time.sleep(0.2)
    assert current.status in ("completed", "incomplete") and current.output_text, current.status
    slow = " EMULATE_FAULT:busy" if target.emulated else ""
    for _ in range(5):  # each time it ended before the cancel arrived: once more
        running = client.responses.create(model=CHAT_MODEL, input=LONG + slow, max_output_tokens=256, background=True)
        try:
            cancelled = client.responses.cancel(running.id)
        except openai.BadRequestError:
            if client.responses.retrieve(running.id).status in ("completed", "incomplete"):
                continue
            raise
        assert cancelled.status == "cancelled", cancelled.status
        assert client.responses.retrieve(running.id).status == "cancelled"
        return
    pytest.skip("every background response ended before its cancel arrived: cancelling was not checked")


@pytest.mark.family("conversations")
def test_conversation_lifecycle(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Hello."}], metadata={"suite": "workerprobe"}
    )
    assert conversation.object == "conversation" and conversation.id
    assert client.conversations.retrieve(conversation.id).id == conversation.id
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "And again."}]
    )
    assert len(added.data) == 1
    item_id = added.data[0].id  # type: ignore[union-attr]
    listed = client.conversations.items.list(conversation.id, order="asc")
    assert [i.id for i in listed.data][-1] == item_id and len(listed.data) == 2  # type: ignore[union-attr]
    assert client.conversations.items.retrieve(item_id, conversation_id=conversation.id).id == item_id  # type: ignore[union-attr]
    client.conversations.items.delete(item_id, conversation_id=conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(item_id, conversation_id=conversation.id)
    updated = client.conversations.update(conversation.id, metadata={"suite": "again"})
    assert updated.metadata == {"suite": "again"}
    assert client.conversations.delete(conversation.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


@pytest.mark.family("conversations")
def test_a_response_in_a_conversation_sees_and_extends_it(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": _word("egret")}])
    response = client.responses.create(
        model=CHAT_MODEL, conversation=conversation.id, input="Say it again.", max_output_tokens=32
    )
    assert _said(response.output_text, "egret"), (
        f"the conversation did not reach the model: {response.output_text[:80]!r}"
    )
    kinds = [i.type for i in client.conversations.items.list(conversation.id, order="asc").data]
    assert kinds == ["message", "message", "message"], f"the conversation holds {kinds} after the response"
