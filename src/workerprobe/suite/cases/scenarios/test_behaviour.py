"""Behaviour, not only shape, probed black-box through the official SDK: no emulator needed, a few
neurons each on a deployed Worker. Each says how sure it can be.

A Worker can answer with perfect JSON and still drop parameters, lose instructions or map models
silently; these probes catch that from outside."""

from __future__ import annotations

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL, EMBEDDING_MODEL

pytestmark = [pytest.mark.must, pytest.mark.family("chat")]

CANARY = "PAPAYA"
COUNT = [{"role": "user", "content": "Write the numbers from 1 to 9, separated by commas."}]
EQUATION = [{"role": "user", "content": 'What is 3 * 10? Answer as an equation, like "2 * 2 = 4."'}]


def _text(completion: openai.types.chat.ChatCompletion) -> str:
    return completion.choices[0].message.content or ""


@pytest.mark.should
def test_temperature_zero_repeats_itself(client: openai.OpenAI) -> None:
    """Confidence high: greedy decoding repeats itself; a remapped temperature (`|| 0.6`) does not.
    A real model batched on a GPU may still differ by a token, rarely."""
    kwargs = {"model": CHAT_MODEL, "temperature": 0, "max_tokens": 24, "messages": COUNT}
    first = _text(client.chat.completions.create(**kwargs))  # type: ignore[call-overload]
    second = _text(client.chat.completions.create(**kwargs))  # type: ignore[call-overload]
    assert first == second, f"temperature 0 gave two texts: {first!r} and {second!r}"


@pytest.mark.should
def test_streamed_text_equals_plain_text_at_temperature_zero(client: openai.OpenAI) -> None:
    """Confidence high (as above): a stream that loses or repeats tokens between events differs."""
    kwargs = {"model": CHAT_MODEL, "temperature": 0, "max_tokens": 24, "messages": COUNT}
    plain = _text(client.chat.completions.create(**kwargs))  # type: ignore[call-overload]
    chunks = client.chat.completions.create(**kwargs, stream=True)  # type: ignore[call-overload]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain


def test_stop_is_honoured_or_rejected(client: openai.OpenAI) -> None:
    """Confidence medium: a model that writes no "=" passes whatever the Worker does with `stop`."""
    try:
        completion = client.chat.completions.create(
            model=CHAT_MODEL, temperature=0, max_tokens=16, stop=["="], messages=EQUATION
        )
    except openai.BadRequestError:
        return
    text = _text(completion)
    assert "=" not in text, f"stop=['='] was dropped: {text!r}"


def test_n_is_honoured_or_rejected(client: openai.OpenAI) -> None:
    """Confidence certain: n=2 gives two choices or a 400, never one choice silently."""
    try:
        completion = client.chat.completions.create(model=CHAT_MODEL, n=2, max_tokens=4, messages=COUNT)
    except openai.BadRequestError:
        return
    assert len(completion.choices) == 2, f"{len(completion.choices)} choice(s) for n=2"


def test_logit_bias_is_rejected_or_accepted_as_sent(client: openai.OpenAI) -> None:
    """Confidence low for acceptance (a bias cannot be seen from outside); a 5xx or another error
    class is a finding for certain."""
    try:
        client.chat.completions.create(model=CHAT_MODEL, max_tokens=4, logit_bias={"15": -100}, messages=COUNT)
    except openai.BadRequestError:
        return


@pytest.mark.family("embeddings")
def test_dimensions_are_honoured_or_rejected(client: openai.OpenAI) -> None:
    """Confidence certain: a vector of another size than asked is silently wrong data."""
    try:
        result = client.embeddings.create(model=EMBEDDING_MODEL, input="a harbour", dimensions=64)
    except openai.BadRequestError:
        return
    assert len(result.data[0].embedding) == 64, f"{len(result.data[0].embedding)} dimensions for dimensions=64"


@pytest.mark.family("models")
def test_models_retrieve(client: openai.OpenAI) -> None:
    listed = client.models.list().data
    assert listed, "models.list() is empty"
    model = client.models.retrieve(listed[0].id)
    assert model.id == listed[0].id and model.object == "model"
    assert isinstance(model.created, int) and model.owned_by


@pytest.mark.should
def test_chat_objects_carry_openai_fields(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, max_tokens=4, messages=COUNT)
    body = raw.http_response.json()
    missing = [
        f for f in ("id", "object", "created", "model", "choices", "usage", "system_fingerprint") if f not in body
    ]
    missing += [
        f"choices[0].{f}" for f in ("index", "message", "finish_reason", "logprobs") if f not in body["choices"][0]
    ]
    assert not missing, f"the completion lacks {missing}"
    assert body["object"] == "chat.completion"


def test_an_openai_model_name_is_mapped_or_not_found(client: openai.OpenAI) -> None:
    """Confidence certain: `gpt-4o-mini` is answered (mapped) or a 404; any other class misleads."""
    try:
        completion = client.chat.completions.create(model="gpt-4o-mini", max_tokens=4, messages=COUNT)
    except openai.NotFoundError:
        return
    assert completion.choices and completion.model


@pytest.mark.family("runs")
def test_instructions_reach_the_model(client: openai.OpenAI) -> None:
    """Confidence high for a real model (it obeys a one-word instruction); the emulator answers by
    its own rule, so there the canary is looked for only where it obeys (embedded: see
    test_assistants.test_run_instructions_reach_the_model)."""
    say = f"Whatever the user writes, answer with exactly one word: {CANARY}."
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions=say, temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Describe a harbour."}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=8, poll_interval_ms=100
    )
    assert run.object == "thread.run" and run.status in ("completed", "incomplete"), run.status
    reply = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value  # type: ignore[union-attr]
    overridden = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        instructions=f"Answer with exactly one word: {CANARY[::-1]}.",
        max_completion_tokens=8,
        poll_interval_ms=100,
    )
    assert overridden.status in ("completed", "incomplete"), overridden.status
    second = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value  # type: ignore[union-attr]
    assert CANARY.lower() in reply.lower(), f"the assistant's instructions did not reach the model: {reply!r}"
    assert CANARY[::-1].lower() in second.lower(), f"the run's instructions did not reach the model: {second!r}"


@pytest.mark.family("runs")
def test_a_run_on_an_unknown_thread_is_not_found(client: openai.OpenAI) -> None:
    """Confidence certain: with an assistant that exists, only the thread can be what is not
    found (a run on an unknown thread that answers 200 runs on nothing)."""
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Be brief.")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(
            thread_id="thread_workerprobe_unknown", assistant_id=assistant.id, max_completion_tokens=4
        )


@pytest.mark.family("runs")
def test_a_run_with_an_unknown_assistant_is_not_found(client: openai.OpenAI) -> None:
    """Confidence certain: on a thread that exists, only the assistant can be what is not found."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi."}])
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id="asst_workerprobe_unknown", max_completion_tokens=4
        )
