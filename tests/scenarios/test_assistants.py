"""Assistant, thread and run lifecycles through the SDK against the target."""

from __future__ import annotations

import openai
import pytest

from tests.scenarios.conftest import CHAT_MODEL
from workerprobe.suite.target import Target

# Level of every test here unless it says otherwise: MUST (an official client breaks).
pytestmark = [pytest.mark.must, pytest.mark.family("assistants")]


def test_assistant_lifecycle(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model=CHAT_MODEL, name="Tutor", instructions="Be brief.")
    assert client.beta.assistants.retrieve(created.id).name == "Tutor"
    assert client.beta.assistants.update(created.id, name="Renamed").name == "Renamed"
    assert created.id in {a.id for a in client.beta.assistants.list(limit=100).data}
    assert client.beta.assistants.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)


@pytest.mark.family("threads")
def test_thread_lifecycle_with_messages(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    assert client.beta.threads.retrieve(thread.id).id == thread.id
    client.beta.threads.messages.create(thread.id, role="user", content="second")
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.content[0].text.value for m in listed] == ["first", "second"]  # type: ignore[union-attr]
    first = client.beta.threads.messages.retrieve(listed[0].id, thread_id=thread.id)
    assert first.id == listed[0].id and first.thread_id == thread.id
    changed = client.beta.threads.messages.update(listed[0].id, thread_id=thread.id, metadata={"seen": "yes"})
    assert changed.metadata == {"seen": "yes"}
    assert client.beta.threads.messages.delete(listed[1].id, thread_id=thread.id).deleted
    assert [m.id for m in client.beta.threads.messages.list(thread.id).data] == [listed[0].id]
    assert client.beta.threads.update(thread.id, metadata={"k": "v"}).metadata == {"k": "v"}
    assert client.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)


@pytest.mark.family("runs")
def test_run_create_and_poll_stores_the_reply(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Answer briefly.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 6 * 7?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=32, poll_interval_ms=100
    )
    assert run.status in ("completed", "incomplete")
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].run_id == run.id and messages[1].content[0].text.value  # type: ignore[union-attr]
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == run.status
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]
    changed = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"checked": "yes"})
    assert changed.metadata == {"checked": "yes"}


@pytest.mark.family("runs")
def test_create_thread_and_run(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "What is 2 + 5?"}]},
        max_completion_tokens=16,
        poll_interval_ms=100,
    )
    assert run.status in ("completed", "incomplete") and run.thread_id
    reply = client.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.role == "assistant" and reply.run_id == run.id


@pytest.mark.family("runs")
def test_run_stream_yields_text_deltas(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 12 / 4?"}])
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=32
    ) as stream:
        text = "".join(stream.text_deltas)
        final = stream.get_final_run()
    assert text and final.status in ("completed", "incomplete")
    stored = client.beta.threads.messages.list(thread.id).data[0]
    assert stored.role == "assistant" and stored.content[0].text.value == text  # type: ignore[union-attr]


def test_list_pagination(client: openai.OpenAI) -> None:
    made = [client.beta.assistants.create(model=CHAT_MODEL, name=f"page {i}").id for i in range(3)]
    page = client.beta.assistants.list(limit=2, order="desc")
    assert len(page.data) == 2 and page.has_more
    assert [a.id for a in page.data] == made[::-1][:2]


@pytest.mark.family("runs")
def test_run_instructions_reach_the_model(client: openai.OpenAI, target: Target) -> None:
    if not target.emulated:
        pytest.skip("a deployed model need not answer deterministically; runs when the upstream is the emulator")

    def answer(instructions: str) -> str:
        assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions=instructions, temperature=0)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Describe a harbour"}])
        client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
        return client.beta.threads.messages.list(thread.id).data[0].content[0].text.value  # type: ignore[union-attr]

    assert answer("You are terse.") == answer("You are terse.")
    assert answer("You are terse.") != answer("You are verbose.")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.family("runs")
def test_a_run_calls_its_tool_and_goes_on_with_the_output(client: openai.OpenAI) -> None:
    """The tool loop of the Assistants API (create_and_poll, submit_tool_outputs_and_poll). The run
    names the tool in `tool_choice`, so any model must call it: a run that completes instead never
    gave the model its tools."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Use your tools.", tools=[WEATHER])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Oslo?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=64,
        poll_interval_ms=100,
    )
    assert run.status == "requires_action", (
        f"a run whose tool_choice names get_weather ended {run.status!r} without calling it: "
        "the run's tools never reached the model"
    )
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert calls and all(call.function.name == "get_weather" for call in calls)
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"celsius": 3}'} for call in calls],
        poll_interval_ms=100,
    )
    assert done.status in ("completed", "incomplete"), done.status
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant" and reply.run_id == run.id


@pytest.mark.family("runs")
def test_a_streamed_run_stops_at_requires_action_and_streams_on_after_the_outputs(client: openai.OpenAI) -> None:
    """`runs.stream()` and `submit_tool_outputs_stream()`: the event stream ends the first part
    with `thread.run.requires_action`, the second streams the answer."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Use your tools.", tools=[WEATHER])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Oslo?"}])
    forced = {"type": "function", "function": {"name": "get_weather"}}
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice=forced,
        max_completion_tokens=64,  # type: ignore[arg-type]
    ) as stream:
        events = [event.event for event in stream]
        run = stream.current_run
    assert "thread.run.requires_action" in events, f"the run's events were {events}"
    assert run is not None and run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"celsius": 3}'} for call in calls],
    ) as stream:
        text = "".join(stream.text_deltas)
        final = stream.current_run
    assert final is not None and final.status in ("completed", "incomplete") and text


@pytest.mark.should
@pytest.mark.family("runs")
def test_run_steps_list_what_the_run_did(client: openai.OpenAI) -> None:
    """Run steps (`runs.steps.list` / `retrieve`): a completed run has a `message_creation` step
    naming the message it wrote. SHOULD: the SDK works without them, but clients that show a run's
    progress read them."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Answer briefly.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 6 * 7?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=32, poll_interval_ms=100
    )
    listed = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    made = [s for s in listed if s.type == "message_creation"]
    assert made, f"the run's steps were {[s.type for s in listed]}"
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert made[0].step_details.message_creation.message_id == reply.id  # type: ignore[union-attr]
    assert client.beta.threads.runs.steps.retrieve(made[0].id, thread_id=thread.id, run_id=run.id).id == made[0].id
