"""Assistant, thread and run lifecycles through the SDK against the target."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL
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


LONG = " ".join(["harbour"] * 600)  # about 600 tokens for any tokenizer


@pytest.mark.should
@pytest.mark.family("runs")
def test_a_run_over_its_max_prompt_tokens_ends_incomplete(client: openai.OpenAI) -> None:
    """`max_prompt_tokens` (OpenAI: the run ends `incomplete` when the prompt exceeds it). SHOULD:
    a Worker that ignores it sends the whole thread, and its user pays for it."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": LONG}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, max_completion_tokens=8,
        poll_interval_ms=100,
    )  # fmt: skip
    assert run.status == "incomplete", f"a 600-token thread under max_prompt_tokens 256 ended {run.status!r}"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"


@pytest.mark.should
@pytest.mark.family("runs")
def test_truncation_last_messages_shows_the_model_only_the_newest(client: openai.OpenAI) -> None:
    """`truncation_strategy: last_messages`: the model sees the newest N messages, so the prompt
    (the upstream's own `usage.prompt_tokens`) is smaller than the whole thread's."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL)

    def run(*texts: str, **fields: object) -> openai.types.beta.threads.Run:
        thread = client.beta.threads.create(messages=[{"role": "user", "content": t} for t in texts])
        return client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=8, poll_interval_ms=100,
            **fields,  # type: ignore[arg-type]
        )  # fmt: skip

    whole = run(LONG, "What is 6 * 7?")
    newest = run(LONG, "What is 6 * 7?", truncation_strategy={"type": "last_messages", "last_messages": 1})
    assert newest.truncation_strategy is not None and newest.truncation_strategy.type == "last_messages"
    assert whole.usage is not None and newest.usage is not None
    assert newest.usage.prompt_tokens < whole.usage.prompt_tokens - 300, (
        f"with last_messages 1 the prompt was {newest.usage.prompt_tokens} tokens, the whole thread's "
        f"{whole.usage.prompt_tokens}: the 600-token first message was still sent"
    )


@pytest.mark.should
@pytest.mark.family("runs")
def test_a_run_cut_at_max_completion_tokens_is_incomplete(client: openai.OpenAI) -> None:
    """A reply cut at the run's `max_completion_tokens` ends the run `incomplete` with that reason
    (not `completed`): a client that shows the reply needs to know it is cut."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count from one to fifty in words."}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=3, poll_interval_ms=100
    )
    assert run.status == "incomplete", f"a reply cut at 3 tokens ended the run {run.status!r}"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"


@pytest.mark.should
@pytest.mark.family("runs")
def test_a_runs_additional_messages_join_the_thread(client: openai.OpenAI) -> None:
    """`additional_messages` are added to the thread before the run, in order, before the reply."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Answer briefly.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=8, poll_interval_ms=100,
        additional_messages=[{"role": "user", "content": "second"}, {"role": "user", "content": "third"}],
    )  # fmt: skip
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    texts = [m.content[0].text.value if m.role == "user" else m.role for m in listed]  # type: ignore[union-attr]
    assert texts == ["first", "second", "third", "assistant"], texts
    assert listed[-1].run_id == run.id


@pytest.mark.should
@pytest.mark.family("runs")
def test_additional_instructions_reach_the_model(client: openai.OpenAI, target: Target) -> None:
    if not target.emulated:
        pytest.skip("a deployed model need not answer deterministically; runs when the upstream is the emulator")
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="You are terse.", temperature=0)

    def answer(**fields: str) -> str:
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Describe a harbour"}])
        client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=assistant.id,
            poll_interval_ms=50,
            **fields,  # type: ignore[arg-type]
        )
        return client.beta.threads.messages.list(thread.id).data[0].content[0].text.value  # type: ignore[union-attr]

    assert answer() == answer()
    assert answer(additional_instructions="Mention the tide.") != answer()


class _ToolCallsSeen(openai.AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []

    def on_tool_call_created(self, tool_call: object) -> None:
        self.created.append(tool_call.function.name)  # type: ignore[attr-defined]


@pytest.mark.should
@pytest.mark.family("runs")
def test_a_streamed_runs_tool_calls_reach_the_sdks_event_handler(client: openai.OpenAI) -> None:
    """`thread.run.step.delta` events carry a streamed run's tool calls: the SDK's event handler
    (`on_tool_call_created`) is built from them. SHOULD: `requires_action` alone still lets a
    client submit outputs, but an application's handler never hears of the call."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Use your tools.", tools=[WEATHER])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Oslo?"}])
    seen = _ToolCallsSeen()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=64,
        event_handler=seen,
    ) as stream:
        stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "requires_action", run and run.status
    assert seen.created == ["get_weather"] * len(seen.created) and seen.created, (
        f"the event handler saw tool calls {seen.created}"
    )
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


@pytest.mark.family("runs")
@pytest.mark.asyncio(loop_scope="function")
async def test_the_async_client_runs_the_tool_loop_polled_and_streamed(async_client: openai.AsyncOpenAI) -> None:
    """The same tool loop through `AsyncOpenAI`: create_and_poll / submit_tool_outputs_and_poll,
    then runs.stream / submit_tool_outputs_stream."""
    assistant = await async_client.beta.assistants.create(
        model=CHAT_MODEL,
        instructions="Use your tools.",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    forced: Any = {"type": "function", "function": {"name": "get_weather"}}
    thread = await async_client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    run = await async_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice=forced, max_completion_tokens=64,
        poll_interval_ms=100,
    )  # fmt: skip
    assert run.status == "requires_action" and run.required_action is not None, run.status
    outputs: Any = [{"tool_call_id": c.id, "output": "3 C"} for c in run.required_action.submit_tool_outputs.tool_calls]
    done = await async_client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=outputs, poll_interval_ms=100
    )
    assert done.status in ("completed", "incomplete"), done.status

    thread = await async_client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Bergen?"}])
    async with async_client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice=forced, max_completion_tokens=64
    ) as stream:
        await stream.until_done()
        waiting = stream.current_run
    assert waiting is not None and waiting.required_action is not None
    outputs = [{"tool_call_id": c.id, "output": "5 C"} for c in waiting.required_action.submit_tool_outputs.tool_calls]
    async with async_client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=waiting.id, thread_id=thread.id, tool_outputs=outputs
    ) as stream:
        text = "".join([delta async for delta in stream.text_deltas])
        final = stream.current_run
    assert final is not None and final.status in ("completed", "incomplete") and text


@pytest.mark.should
@pytest.mark.family("runs")
@pytest.mark.asyncio(loop_scope="function")
async def test_the_async_client_sees_structured_output_and_the_run_limits(async_client: openai.AsyncOpenAI) -> None:
    """Through `AsyncOpenAI`: a run's `response_format` (json_object) is echoed and answered as
    JSON; a thread over `max_prompt_tokens` ends the run `incomplete` with that reason."""
    assistant = await async_client.beta.assistants.create(
        model=CHAT_MODEL, instructions="Answer in JSON.", response_format={"type": "json_object"}
    )
    thread = await async_client.beta.threads.create(
        messages=[{"role": "user", "content": "Give a JSON object with the key city set to Oslo."}]
    )
    run = await async_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=64, poll_interval_ms=100
    )
    assert run.response_format is not None and run.response_format.type == "json_object"  # type: ignore[union-attr]
    if run.status == "completed":
        reply = (await async_client.beta.threads.messages.list(thread.id)).data[0]
        json.loads(reply.content[0].text.value)  # type: ignore[union-attr]
    long = await async_client.beta.threads.create(messages=[{"role": "user", "content": LONG}])
    cut = await async_client.beta.threads.runs.create_and_poll(
        thread_id=long.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=100
    )
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_prompt_tokens"
