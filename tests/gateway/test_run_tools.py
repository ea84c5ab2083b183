"""Runs with function tools, through the official SDK (sync and async, plain and streamed): a tool
call ends the run in `requires_action`, the submitted outputs continue it; `tool_choice` and
`response_format` reach the model."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.gateway.conftest import CHAT_MODEL, Gateway
from tests.gateway.test_chat import WEATHER

QUESTION = [{"role": "user", "content": "What is the weather in Oslo?"}]


def _assistant(client: openai.OpenAI, **fields: Any) -> Any:
    return client.beta.assistants.create(model=CHAT_MODEL, tools=[WEATHER], **fields)  # type: ignore[list-item]


def test_a_tool_call_requires_action_and_the_outputs_complete_the_run(client: openai.OpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "requires_action" and run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert [m.role for m in client.beta.threads.messages.list(thread.id).data] == ["user"]  # no reply yet
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": '{"temp": 3}'}],
        poll_interval_ms=50,
    )  # fmt: skip
    assert done.status == "completed" and done.required_action is None
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant" and reply.run_id == run.id and reply.content[0].text.value  # type: ignore[union-attr]


def test_wrong_outputs_are_400_and_the_run_still_waits(client: openai.OpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_other", "output": "x"}]
        )
    assert refused.value.body["param"] == "tool_outputs"  # type: ignore[index]
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled"


def test_tool_choice_none_and_the_run_echoes_what_it_was_asked(client: openai.OpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=50
    )
    assert run.status == "completed" and run.tool_choice == "none"
    named = client.beta.threads.runs.create(
        thread_id=client.beta.threads.create(messages=QUESTION).id,  # type: ignore[arg-type]
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_object"},
    )
    assert named.tool_choice.function.name == "get_weather"  # type: ignore[union-attr]
    assert named.response_format.type == "json_object"  # type: ignore[union-attr]


def test_streamed_runs_stop_at_requires_action_and_continue_with_the_outputs(client: openai.OpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = [e.event for e in stream]
        run = stream.current_run
    assert events[-1] == "thread.run.requires_action" and "thread.message.created" not in events
    assert run is not None and run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": '{"temp": 3}'}]
    ) as stream:
        text = "".join(stream.text_deltas)
        final = stream.current_run
    assert text and final is not None and final.status == "completed"


async def test_the_async_client_runs_the_tool_loop(gateway: Gateway) -> None:
    async with gateway.async_client() as client:
        assistant = await client.beta.assistants.create(model=CHAT_MODEL, tools=[WEATHER])  # type: ignore[list-item]
        thread = await client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
        )
        assert run.status == "requires_action" and run.required_action is not None
        outputs = [
            {"tool_call_id": c.id, "output": "sunny"} for c in run.required_action.submit_tool_outputs.tool_calls
        ]
        done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=outputs,
            poll_interval_ms=50,  # type: ignore[arg-type]
        )
        assert done.status == "completed"


def test_run_steps_record_the_tool_calls_and_the_message(client: openai.OpenAI) -> None:
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.required_action is not None
    (waiting,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert waiting.type == "tool_calls" and waiting.status == "in_progress"
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "3 C"}],
        poll_interval_ms=50,
    )
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in steps)
    tool_step = steps[0].step_details
    assert tool_step.type == "tool_calls" and tool_step.tool_calls[0].function.output == "3 C"  # type: ignore[union-attr]
    message_id = steps[1].step_details.message_creation.message_id  # type: ignore[union-attr]
    assert client.beta.threads.messages.list(thread.id).data[0].id == message_id
    again = client.beta.threads.runs.steps.retrieve(steps[1].id, thread_id=thread.id, run_id=run.id)
    assert again.id == steps[1].id
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve("step_nope", thread_id=thread.id, run_id=run.id)
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, tool_choice="none") as stream:
        events = [e.event for e in stream]
    assert "thread.run.step.created" in events and "thread.run.step.completed" in events


def test_a_runs_response_format_reaches_the_model(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL, response_format={"type": "json_object"})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Give me a city as JSON."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed" and run.response_format.type == "json_object"  # type: ignore[union-attr]
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert isinstance(json.loads(reply.content[0].text.value), dict)  # type: ignore[union-attr]


class _Seen(openai.AssistantEventHandler):
    """What the SDK's stream helper hands an application's event handler."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []
        self.done: list[str] = []
        self.steps_done: list[str] = []

    def on_tool_call_created(self, tool_call: Any) -> None:
        self.created.append(tool_call.function.name)

    def on_tool_call_done(self, tool_call: Any) -> None:
        self.done.append(tool_call.function.name)

    def on_run_step_done(self, run_step: Any) -> None:
        self.steps_done.append(run_step.type)


def test_the_sdks_event_handler_sees_the_tool_calls_and_the_steps(client: openai.OpenAI) -> None:
    """`thread.run.step.delta` carries the calls (the SDK's `on_tool_call_created` comes from it,
    `on_tool_call_done` at `requires_action`); the continued stream completes the tool-calls step,
    then the message step."""
    assistant = _assistant(client)
    thread = client.beta.threads.create(messages=QUESTION)  # type: ignore[arg-type]
    first = _Seen()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=first) as s:
        s.until_done()
        run = s.current_run
    assert first.created == ["get_weather"] and first.done == ["get_weather"]  # done at requires_action
    assert run is not None and run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    then = _Seen()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "3 C"}],
        event_handler=then,
    ) as s:  # fmt: skip
        s.until_done()
    assert then.steps_done == ["tool_calls", "message_creation"]
