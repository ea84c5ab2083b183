"""What clients send and rely on that a schema alone does not show, probed black-box through the
official SDK, a few neurons each (none for the object reads). Each says how sure it can be.

- requests in a shape OpenAI accepts and real clients send (content as text parts, `store` and
  `metadata` on a chat call, a batch of inputs), and OpenAI's model names;
- objects read back as they were created (a retrieve whose shape differs from the create's);
- lists that hold the listed objects and nothing else.
"""

from __future__ import annotations

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import CHAT_MODEL, EMBEDDING_MODEL

pytestmark = [pytest.mark.must, pytest.mark.family("chat")]

ASK = "Name a colour."


def test_content_as_text_parts_is_accepted(client: openai.OpenAI) -> None:
    """Confidence certain: OpenAI accepts a message's content as an array of text parts, and
    clients send it so (LangChain, the Vercel AI SDK for multi-part messages, any multimodal app);
    a Worker that reads `content` as a string refuses or drops it."""
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        max_tokens=8,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Name a "}, {"type": "text", "text": "colour."}]}
        ],
    )
    assert completion.choices and completion.choices[0].message.content, "no text for a content of text parts"


def test_store_and_metadata_on_a_chat_call_are_accepted(client: openai.OpenAI) -> None:
    """Confidence certain: `store` and `metadata` are chat parameters of OpenAI's API (the Agents
    SDK sends `store`); a Worker may ignore them, not refuse the call."""
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        max_tokens=4,
        store=False,
        metadata={"app": "workerprobe"},
        messages=[{"role": "user", "content": ASK}],
    )
    assert completion.choices


@pytest.mark.family("embeddings")
def test_an_openai_embedding_model_name_is_mapped_or_not_found(client: openai.OpenAI) -> None:
    """Confidence certain: `text-embedding-3-small` is answered (mapped) or a 404 as OpenAI answers
    a model it does not have; a 400 or 500 tells a client its request is wrong."""
    try:
        answer = client.embeddings.create(model="text-embedding-3-small", input="hello")
    except openai.NotFoundError:
        return
    assert answer.data and answer.data[0].embedding


@pytest.mark.family("embeddings")
def test_many_inputs_come_back_in_order(client: openai.OpenAI) -> None:
    """Confidence certain for the indices: one vector per input, `index` 0..n-1 in the order given,
    all of one size; high for the vectors: the first and the last input embedded alone are nearest
    their own place in the batch (a Worker that merges a batch's parts in another order hands each
    caller another text's vector under the right index)."""
    texts = ["a recipe for bread", "the rules of chess", "a poem about rain", "how tides work", "tax law"]
    answer = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)
    assert [d.index for d in answer.data] == list(range(5)), [d.index for d in answer.data]
    assert len({len(d.embedding) for d in answer.data}) == 1
    for place in (0, len(texts) - 1):
        alone = client.embeddings.create(model=EMBEDDING_MODEL, input=texts[place]).data[0].embedding
        nearness = [_cosine(alone, d.embedding) for d in answer.data]
        assert max(range(len(texts)), key=nearness.__getitem__) == place, (
            f"{texts[place]!r} embedded alone is nearest place {nearness.index(max(nearness))} of the batch, "
            f"not its own {place}: {[round(n, 3) for n in nearness]}"
        )


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norms = (sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5)
    return dot / norms if norms else 0.0


@pytest.mark.family("assistants")
def test_an_assistant_reads_back_as_it_was_created(client: openai.OpenAI) -> None:
    """Confidence certain: a retrieve and a list give the object the create returned (no field
    dropped, renamed or reset); costs nothing."""
    made = client.beta.assistants.create(
        model=CHAT_MODEL,
        name="workerprobe shapes",
        instructions="Be brief.",
        temperature=0.5,
        metadata={"workerprobe": "shapes"},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
    )
    read = client.beta.assistants.retrieve(made.id)
    created, retrieved = made.model_dump(exclude_none=True), read.model_dump(exclude_none=True)
    differ = {k: (created.get(k), retrieved.get(k)) for k in created if created.get(k) != retrieved.get(k)}
    assert not differ, f"the retrieve differs from the create on {differ}"
    listed = [a for a in client.beta.assistants.list(limit=100).data if a.id == made.id]
    assert listed and listed[0].model_dump(exclude_none=True) == retrieved, "the list holds another shape"


@pytest.mark.family("threads")
def test_a_message_reads_back_as_it_was_created(client: openai.OpenAI) -> None:
    """Confidence certain: a thread's message, retrieved and listed, is the one created; costs nothing."""
    thread = client.beta.threads.create(metadata={"workerprobe": "shapes"})
    made = client.beta.threads.messages.create(thread.id, role="user", content="Hello.", metadata={"k": "v"})
    read = client.beta.threads.messages.retrieve(made.id, thread_id=thread.id)
    created, retrieved = made.model_dump(exclude_none=True), read.model_dump(exclude_none=True)
    differ = {k: (created.get(k), retrieved.get(k)) for k in created if created.get(k) != retrieved.get(k)}
    assert not differ, f"the retrieve differs from the create on {differ}"
    listed = client.beta.threads.messages.list(thread.id).data
    assert [m.id for m in listed] == [made.id], "the thread's list holds other objects than its one message"
    assert client.beta.threads.retrieve(thread.id).metadata == {"workerprobe": "shapes"}


@pytest.mark.family("models")
def test_the_model_list_holds_models_and_each_can_be_retrieved(client: openai.OpenAI) -> None:
    """Confidence certain: every item of `models.list()` is a model whose id `models.retrieve`
    answers (the first five: a client picks from the list and retrieves)."""
    listed = client.models.list().data
    assert listed, "the model list is empty"
    assert all(m.object == "model" and m.id for m in listed), [m.object for m in listed if m.object != "model"]
    for model in listed[:5]:
        assert client.models.retrieve(model.id).id == model.id
