"""Assistant, thread, message and run lifecycles through the official SDK (sync and async)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway.conftest import CHAT_MODEL, Gateway
from workerprobe import tokens


def test_assistant_lifecycle(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(
        model=CHAT_MODEL, name="Helper", instructions="Be brief.", metadata={"team": "qa"}
    )
    assert created.id.startswith("asst_") and created.object == "assistant"
    assert created.name == "Helper" and created.metadata == {"team": "qa"}
    assert client.beta.assistants.retrieve(created.id) == created
    modified = client.beta.assistants.update(created.id, name="Renamed")
    assert modified.name == "Renamed" and modified.instructions == "Be brief."
    deleted = client.beta.assistants.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)


def test_assistant_validation(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(model=CHAT_MODEL, name="x" * 257)
    assert caught.value.body["param"] == "name"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(model=CHAT_MODEL, metadata={f"k{i}": "v" for i in range(17)})
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(model="@cf/nobody/none")
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(model="@cf/baai/bge-base-en-v1.5")


def test_assistant_list_pagination(gateway: Gateway) -> None:
    with gateway.client() as client:
        made = [client.beta.assistants.create(model=CHAT_MODEL, name=f"page-{i}").id for i in range(5)]
        page = client.beta.assistants.list(limit=2, order="asc", after=made[0])
        assert [a.id for a in page.data] == made[1:3] and page.has_more
        newest = client.beta.assistants.list(limit=3)
        assert [a.id for a in newest.data] == made[::-1][:3]
        raw = gateway.http.get("/v1/assistants", params={"limit": 2, "order": "asc", "after": made[2]}).json()
        assert raw["first_id"] == made[3] and raw["last_id"] == made[4]
        assert gateway.http.get("/v1/assistants", params={"limit": 0}).status_code == 400
        assert gateway.http.get("/v1/assistants", params={"order": "sideways"}).status_code == 400


def test_thread_lifecycle_with_messages(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ],
        metadata={"k": "v"},
    )
    assert thread.id.startswith("thread_") and thread.metadata == {"k": "v"}
    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.content[0].text.value for m in messages.data] == ["first", "second"]  # type: ignore[union-attr]
    added = client.beta.threads.messages.create(thread.id, role="user", content="third")
    assert added.thread_id == thread.id and added.role == "user" and added.status == "completed"
    assert client.beta.threads.messages.retrieve(added.id, thread_id=thread.id).id == added.id
    updated = client.beta.threads.messages.update(added.id, thread_id=thread.id, metadata={"seen": "yes"})
    assert updated.metadata == {"seen": "yes"}
    assert client.beta.threads.update(thread.id, metadata={"k": "w"}).metadata == {"k": "w"}
    assert client.beta.threads.messages.delete(added.id, thread_id=thread.id).deleted
    assert client.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)


def test_message_from_another_thread_is_not_found(client: openai.OpenAI) -> None:
    a = client.beta.threads.create(messages=[{"role": "user", "content": "a"}])
    b = client.beta.threads.create()
    message = client.beta.threads.messages.list(a.id).data[0]
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message.id, thread_id=b.id)


def test_run_create_and_poll_stores_the_reply(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL, instructions="Answer maths questions.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 6 * 7?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed" and run.object == "thread.run"
    assert run.usage is not None and run.usage.completion_tokens == 6
    assert run.started_at and run.completed_at
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    reply = messages[-1]
    assert reply.run_id == run.id and reply.assistant_id == assistant.id
    assert reply.content[0].text.value == "6 * 7 = 42."  # type: ignore[union-attr]
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"


def test_run_cut_at_the_token_limit_is_incomplete(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Write a long essay about Rome"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=20, poll_interval_ms=50
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.status == "incomplete"
    assert tokens.count(reply.content[0].text.value) == 20  # type: ignore[union-attr]


def test_run_stream_yields_text_deltas(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 12 / 4?"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        deltas = list(stream.text_deltas)
        final = stream.get_final_run()
    assert "".join(deltas) == "12 / 4 = 3."
    assert final.status == "completed"
    stored = client.beta.threads.messages.list(thread.id).data[0]
    assert stored.content[0].text.value == "12 / 4 = 3."  # type: ignore[union-attr]
    assert stored.status == "completed"


def test_raw_run_event_stream(gateway: Gateway) -> None:
    with gateway.client() as client:
        assistant = client.beta.assistants.create(model=CHAT_MODEL)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 1 + 2?"}])
        body = {"assistant_id": assistant.id, "stream": True}
        with gateway.http.stream("POST", f"/v1/threads/{thread.id}/runs", json=body) as response:
            raw = response.read().decode()
        names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
        assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
        assert names[3:6] == ["thread.run.step.created", "thread.message.created", "thread.message.in_progress"]
        assert "thread.message.delta" in names
        assert names[-4:] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed", "done"]
        assert raw.rstrip().endswith("data: [DONE]")


def test_failed_run_on_upstream_error(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi EMULATE_FAULT:3040"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "rate_limit_exceeded"
    assert [m.role for m in client.beta.threads.messages.list(thread.id).data] == ["user"]


def test_create_thread_and_run(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "What is 2 * 8?"}]},
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    reply = client.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.content[0].text.value == "2 * 8 = 16."  # type: ignore[union-attr]


def test_run_errors(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=CHAT_MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_missing")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id="thread_missing", assistant_id=assistant.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_missing", thread_id=thread.id)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)  # already completed


def test_cancel_a_slow_run() -> None:
    from tests.gateway.conftest import KEY
    from workerprobe.procs import gateway_env, serve

    with serve(["emulator"], env={"CF_API_TOKEN": "t", "WORKERPROBE_EMULATOR_TPOT_MS": "50"}) as emulator:
        env = gateway_env(emulator.url, api_key=KEY, token="t")
        with serve(["gateway"], env=env) as server:
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client:
                assistant = client.beta.assistants.create(model=CHAT_MODEL)
                thread = client.beta.threads.create(messages=[{"role": "user", "content": "Write a long story"}])
                run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
                assert run.status == "queued"
                cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
                assert cancelling.status in ("cancelling", "cancelled")
                final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
                assert final.status == "cancelled" and final.cancelled_at
                assert [m.role for m in client.beta.threads.messages.list(thread.id).data] == ["user"]


async def test_async_run_lifecycle(gateway: Gateway) -> None:
    async with gateway.async_client() as client:
        assistant = await client.beta.assistants.create(model=CHAT_MODEL)
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": "What is 5 + 5?"}])
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
        )
        assert run.status == "completed"
        async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            text = "".join([d async for d in stream.text_deltas])
        assert text
        messages = await client.beta.threads.messages.list(thread.id)
        assert len(messages.data) == 3


def test_bad_bodies(gateway: Gateway) -> None:
    http = gateway.http
    assert http.post("/v1/assistants", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert http.post("/v1/assistants", json={"model": 5}).json()["error"]["param"] == "model"
    thread = http.post("/v1/threads", json={}).json()
    bad = http.post(f"/v1/threads/{thread['id']}/messages", json={"role": "system", "content": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "role"
    assert http.post(f"/v1/threads/{thread['id']}/runs", json={}).json()["error"]["param"] == "assistant_id"
    # Nothing stored was changed by the bad requests.
    assert http.get(f"/v1/threads/{thread['id']}/messages").json()["data"] == []
    assert httpx.get(f"{gateway.url}/v1/threads/{thread['id']}").status_code == 401
