"""A run's limits and context, through the official SDK: `max_prompt_tokens` and
`max_completion_tokens` end a run `incomplete` with the reason; `truncation_strategy` decides how
much of the thread the model sees. What the model saw is read from the upstream's own `usage`
(the emulator counts the prompt it was sent)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.gateway.conftest import CHAT_MODEL
from tests.gateway.test_chat import WEATHER

LONG = " ".join(["harbour"] * 600)  # about 600 tokens
SHORT = "What is 6 * 7?"


def _thread(client: openai.OpenAI, *texts: str) -> Any:
    return client.beta.threads.create(messages=[{"role": "user", "content": t} for t in texts])


def _run(client: openai.OpenAI, *texts: str, **fields: Any) -> Any:
    assistant = client.beta.assistants.create(model=CHAT_MODEL, **fields.pop("assistant", {}))
    thread = _thread(client, *texts)
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50, **fields
    )


def test_last_messages_shows_the_model_only_the_newest(client: openai.OpenAI) -> None:
    whole = _run(client, LONG, LONG, SHORT, max_completion_tokens=8)
    newest = _run(
        client, LONG, LONG, SHORT, max_completion_tokens=8,
        truncation_strategy={"type": "last_messages", "last_messages": 1}
    )  # fmt: skip
    alone = _run(client, SHORT, max_completion_tokens=8)
    assert newest.truncation_strategy.type == "last_messages" and newest.truncation_strategy.last_messages == 1
    assert whole.truncation_strategy.type == "auto"
    assert newest.usage.prompt_tokens == alone.usage.prompt_tokens < whole.usage.prompt_tokens


def test_auto_drops_the_middle_to_fit_max_prompt_tokens(client: openai.OpenAI) -> None:
    run = _run(client, "Hello there.", LONG, LONG, SHORT, max_prompt_tokens=700, max_completion_tokens=8)
    assert (
        run.status in ("completed", "incomplete")
        and run.incomplete_details is None
        or (run.incomplete_details.reason == "max_completion_tokens")
    )
    assert 0 < run.usage.prompt_tokens <= 700
    first_and_newest = _run(client, "Hello there.", LONG, SHORT, max_completion_tokens=8)
    assert run.usage.prompt_tokens == first_and_newest.usage.prompt_tokens  # one LONG (the middle) was dropped


@pytest.mark.parametrize("streamed", [False, True], ids=["polled", "streamed"])
def test_a_prompt_over_max_prompt_tokens_ends_the_run_incomplete(client: openai.OpenAI, streamed: bool) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = _thread(client, LONG)
    if streamed:
        with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256
        ) as stream:
            events = [event.event for event in stream]
            run = stream.current_run
        assert events[-1] == "thread.run.incomplete", events
    else:
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=50
        )
    assert run is not None and run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"
    assert [m.role for m in client.beta.threads.messages.list(thread.id).data] == ["user"]  # no model call, no reply


def test_max_completion_tokens_cuts_the_reply_and_the_run_is_incomplete(client: openai.OpenAI) -> None:
    run = _run(client, "Count from one to fifty in words.", max_completion_tokens=3)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 3


def test_the_limits_hold_over_a_tool_loop(client: openai.OpenAI) -> None:
    """Both model calls of a tool loop share the run's `max_completion_tokens`."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, tools=[WEATHER])  # type: ignore[list-item]
    thread = _thread(client, "What is the weather in Oslo? Then write a long poem about it.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=40, poll_interval_ms=50
    )
    assert run.status == "requires_action" and run.usage is not None
    first = run.usage.completion_tokens
    assert 0 < first < 40
    calls = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": c.id, "output": "3 C"} for c in calls],
        poll_interval_ms=50,
    )  # fmt: skip
    assert done.usage is not None and first < done.usage.completion_tokens <= 40
    assert done.usage.prompt_tokens > run.usage.prompt_tokens  # the usage of both calls


def test_a_truncation_strategy_without_its_count_is_400_and_an_impossible_tool_choice_fails_the_run(
    client: openai.OpenAI,
) -> None:
    """`last_messages` needs its count (the spec says so: a 400). A tool choice naming a function the
    run does not have is schema-valid, so the run is created, and fails with the reason."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, tools=[WEATHER])  # type: ignore[list-item]
    thread = _thread(client, SHORT)
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, truncation_strategy={"type": "last_messages"}
        )
    assert refused.value.body["param"] == "truncation_strategy"  # type: ignore[index]
    assert client.beta.threads.runs.list(thread.id).data == []  # nothing was stored
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        poll_interval_ms=50,
    )
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt" and "get_time" in run.last_error.message
