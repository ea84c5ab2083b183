"""The Responses and Conversations APIs through the official Python SDK, sync and async, against a
real gateway over the real emulator (the emulator answers "Answer with exactly one word: X" with
X, wherever in the prompt it stands: what reached the model can be read off the answer)."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import orjson
import pytest

from tests.gateway.conftest import CHAT_MODEL, Gateway
from workerprobe import sse

LONG = "Write a very long essay about rivers, at least 2000 words."


def _word(word: str) -> str:
    return f"Answer with exactly one word: {word}"


def test_create_retrieve_input_items_delete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input=_word("heron"), max_output_tokens=32)
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.incomplete_details is None
    assert response.output_text.lower().startswith("heron")
    message = response.output[0]
    assert message.type == "message" and message.id.startswith("msg_") and message.role == "assistant"
    assert response.usage is not None and response.usage.output_tokens > 0 and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.usage == response.usage
    items = client.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text == _word("heron")  # type: ignore[union-attr]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_instructions_reach_the_model_and_are_not_carried_over(client: openai.OpenAI) -> None:
    first = client.responses.create(model=CHAT_MODEL, instructions=_word("kestrel"), input="Hello there.")
    assert first.output_text.lower().startswith("kestrel") and first.instructions == _word("kestrel")


def test_previous_response_id_carries_the_context(client: openai.OpenAI) -> None:
    first = client.responses.create(model=CHAT_MODEL, input=_word("otter"), max_output_tokens=32)
    second = client.responses.create(
        model=CHAT_MODEL, previous_response_id=first.id, input="And now tell me about lakes.", max_output_tokens=32
    )
    assert second.previous_response_id == first.id
    assert second.output_text.lower().startswith("otter")  # the first turn reached the model
    alone = client.responses.create(model=CHAT_MODEL, input="And now tell me about lakes.", max_output_tokens=32)
    assert not alone.output_text.lower().startswith("otter")


def test_store_false_is_not_retrievable(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input="Hi.", store=False, max_output_tokens=16)
    assert response.store is False and response.status in ("completed", "incomplete")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=CHAT_MODEL, input="Hi.", previous_response_id=response.id)
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_max_output_tokens_reached_is_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input=LONG, max_output_tokens=17)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 17


def test_streamed_events_as_the_sdk_reads_them(client: openai.OpenAI) -> None:
    with client.responses.stream(model=CHAT_MODEL, input="Tell me about herons.", max_output_tokens=64) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    added = events[2]
    assert deltas and all(d.item_id == added.item.id for d in deltas)  # type: ignore[union-attr]
    assert "".join(d.delta for d in deltas) == final.output_text  # type: ignore[union-attr]
    assert events[0].response.id == events[1].response.id == final.id  # type: ignore[union-attr]
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_a_stream_ends_with_its_terminal_event_and_no_done(gateway: Gateway) -> None:
    body = {"model": CHAT_MODEL, "input": LONG, "max_output_tokens": 16, "stream": True}
    with gateway.http.stream("POST", "/v1/responses", json=body) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        decoder, events = sse.Decoder(), []
        for chunk in answer.iter_bytes():
            events += decoder.feed(chunk)
    assert all(e.data != "[DONE]" for e in events)
    datas = [orjson.loads(e.data) for e in events]
    assert [e.event for e in events] == [d["type"] for d in datas]
    terminal = [d for d in datas if d["type"] in ("response.completed", "response.incomplete", "response.failed")]
    assert len(terminal) == 1 and datas[-1] is terminal[0]
    assert terminal[0]["type"] == "response.incomplete"
    assert terminal[0]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_function_tool_round_trip(client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    first = client.responses.create(
        model=CHAT_MODEL,
        input="What is the weather in Paris? Use get_weather.",
        tools=[tool],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    (call,) = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments), dict)  # type: ignore[union-attr]
    second = client.responses.create(
        model=CHAT_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21}'}],  # type: ignore[union-attr]
        tools=[tool],  # type: ignore[list-item]
    )
    assert second.status == "completed" and second.output_text.startswith("Based on the tool result")


def test_text_format_json_schema_is_parseable(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"river": {"type": "string"}}, "required": ["river"]}
    response = client.responses.create(
        model=CHAT_MODEL,
        input="Name a river.",
        text={"format": {"type": "json_schema", "name": "river", "schema": schema}},
    )
    assert isinstance(json.loads(response.output_text)["river"], str)


def test_conversations_keep_what_responses_add(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": _word("plover")}], metadata={"suite": "1"}
    )
    assert conversation.id.startswith("conv_") and conversation.metadata == {"suite": "1"}
    response = client.responses.create(
        model=CHAT_MODEL, conversation=conversation.id, input="Go on.", max_output_tokens=32
    )
    assert response.output_text.lower().startswith("plover")  # the conversation's items reached the model
    items = client.conversations.items.list(conversation.id, order="asc")
    texts = [i.content[0].text for i in items.data]  # type: ignore[union-attr]
    assert texts == [_word("plover"), "Go on.", response.output_text]
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "More."}]
    )
    (new,) = added.data
    assert client.conversations.items.retrieve(new.id, conversation_id=conversation.id).id == new.id  # type: ignore[union-attr]
    client.conversations.items.delete(new.id, conversation_id=conversation.id)  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(new.id, conversation_id=conversation.id)  # type: ignore[union-attr]
    assert client.conversations.update(conversation.id, metadata={"suite": "2"}).metadata == {"suite": "2"}
    assert client.conversations.delete(conversation.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_async_sdk_create_and_stream(gateway: Gateway) -> None:
    async def main() -> tuple[str, str]:
        async with gateway.async_client() as client:
            plain = await client.responses.create(model=CHAT_MODEL, input=_word("egret"), max_output_tokens=32)
            async with client.responses.stream(model=CHAT_MODEL, input=_word("ibis"), max_output_tokens=32) as s:
                async for _ in s:
                    pass
                streamed = await s.get_final_response()
            return plain.output_text, streamed.output_text

    plain, streamed = asyncio.run(main())
    assert plain.lower().startswith("egret") and streamed.lower().startswith("ibis")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "Hi.", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"input": [{"type": "message", "role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": [{"type": "message", "role": "robot", "content": "Hi."}]}, "input[0].role"),
        ({"input": [{"type": "function_call_output", "output": "1"}]}, "input[0].call_id"),
        ({"input": "Hi.", "max_output_tokens": 4}, "max_output_tokens"),
        ({"input": "Hi.", "background": True, "stream": True}, "stream"),
        ({"input": "Hi.", "background": True, "store": False}, "store"),
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": [{"role": "user", "content": []}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "text", "text": "Hi."}]}]}, "input[0].content[0].type"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": []}]}, "input[0].output"),
        ({"input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
        ({"input": "Hi.", "previous_response_id": None, "conversation": "conv_1"}, "previous_response_id"),
        ({"input": "Hi.", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"input": "Hi.", "conversation": None}, "conversation"),
        ({"input": "Hi.", "tool_choice": None}, "tool_choice"),
        ({"input": "Hi.", "text": {"format": None}}, "text.format"),
        ({"input": "Hi.", "text": {"format": {"type": "json_schema", "name": None, "schema": {}}}}, "text.format.name"),
        ({"input": "Hi.", "previous_response_id": "resp_1", "conversation": "conv_1"}, "previous_response_id"),
    ],
)
def test_bad_requests_are_400_naming_the_field(gateway: Gateway, body: dict[str, object], param: str) -> None:
    answer = gateway.http.post("/v1/responses", json={"model": CHAT_MODEL, **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error


def test_unknown_ids_are_404_in_the_envelope(gateway: Gateway) -> None:
    for method, path in [
        ("GET", "/v1/responses/resp_unknown"),
        ("DELETE", "/v1/responses/resp_unknown"),
        ("GET", "/v1/responses/resp_unknown/input_items"),
        ("POST", "/v1/responses/resp_unknown/cancel"),
        ("GET", "/v1/conversations/conv_unknown"),
        ("GET", "/v1/conversations/conv_unknown/items"),
        ("DELETE", "/v1/conversations/conv_unknown/items/msg_1"),
    ]:
        answer = gateway.http.request(method, path)
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "invalid_request_error", (method, path)


def test_a_background_response_is_queued_answered_and_cancelled(client: openai.OpenAI) -> None:
    queued = client.responses.create(model=CHAT_MODEL, input=_word("curlew"), max_output_tokens=32, background=True)
    assert queued.background and queued.status in ("queued", "in_progress") and queued.output == []
    for _ in range(200):
        done = client.responses.retrieve(queued.id)
        if done.status not in ("queued", "in_progress"):
            break
        time.sleep(0.05)
    assert done.status == "completed" and done.output_text.lower().startswith("curlew")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(queued.id)  # it has ended
    # the emulator's `busy` fault holds the upstream call a second: the cancel comes first
    for _ in range(5):  # a machine too busy to send the cancel within the second: once more
        running = client.responses.create(model=CHAT_MODEL, input="Hi. EMULATE_FAULT:busy", background=True)
        try:
            cancelled = client.responses.cancel(running.id)
            break
        except openai.BadRequestError:
            assert client.responses.retrieve(running.id).status == "completed"
    assert cancelled.status == "cancelled"
    time.sleep(1.5)  # past the upstream's answer: what it would have written is not
    assert client.responses.retrieve(running.id).status == "cancelled"
    assert client.responses.cancel(running.id).status == "cancelled"  # again: the same


def test_cancel_of_a_foreground_response_is_a_400(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT_MODEL, input="Hi.", max_output_tokens=16)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(response.id)


def test_idempotency_key_makes_one_response(gateway: Gateway) -> None:
    body = {"model": CHAT_MODEL, "input": "Hi.", "max_output_tokens": 16}
    headers = {"Idempotency-Key": "responses-once"}
    first = gateway.http.post("/v1/responses", json=body, headers=headers)
    again = gateway.http.post("/v1/responses", json=body, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"


GPT_OSS = "@cf/openai/gpt-oss-20b"


def test_gpt_oss_goes_to_the_upstreams_own_responses_api(client: openai.OpenAI, gateway: Gateway) -> None:
    """A GPT-OSS model: the upstream's /ai/v1/responses answers (its reasoning item kept), and what
    the gateway keeps itself (storage, the chain, streaming) still works around it."""
    first = client.responses.create(model=GPT_OSS, input=_word("grebe"), max_output_tokens=32)
    assert [o.type for o in first.output] == ["reasoning", "message"], [o.type for o in first.output]
    assert first.output_text.lower().startswith("grebe") and first.usage is not None and first.usage.output_tokens > 0
    lines = gateway.http.get("/metrics").text.splitlines()
    assert any('method="responses"' in line and 'event="passthrough"' in line for line in lines)
    second = client.responses.create(
        model=GPT_OSS, previous_response_id=first.id, input="Again, please.", max_output_tokens=32
    )
    assert second.output_text.lower().startswith("grebe")  # the stored chain reached the upstream
    assert client.responses.retrieve(second.id).output_text == second.output_text
    with client.responses.stream(model=GPT_OSS, input=_word("smew"), max_output_tokens=32) as stream:
        final = stream.get_final_response()
    assert final.output_text.lower().startswith("smew")
    cut = client.responses.create(model=GPT_OSS, input=LONG, max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


def test_a_history_sent_again_with_its_ids_is_stored_again(client: openai.OpenAI) -> None:
    """Clients that keep the history themselves send every earlier item back, ids included, on every
    turn: each turn is a new response whose input items are stored under it."""
    first = client.responses.create(model=CHAT_MODEL, input=_word("avocet"), max_output_tokens=32)
    history: list = [
        {"role": "user", "content": _word("avocet")},
        *(o.model_dump(exclude_none=True) for o in first.output),
    ]
    for turn in ("Again.", "Once more."):
        history.append({"role": "user", "content": turn})
        answer = client.responses.create(model=CHAT_MODEL, input=history, max_output_tokens=32)
        assert answer.output_text.lower().startswith("avocet")
        assert len(client.responses.input_items.list(answer.id, limit=100).data) == len(history)
        history += [o.model_dump(exclude_none=True) for o in answer.output]
