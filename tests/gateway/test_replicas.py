"""Two gateway replicas sharing state in Redis (127.0.0.1:6379)."""

from __future__ import annotations

import uuid

import openai
import redis

from tests.gateway.conftest import CHAT_MODEL, KEY, UPSTREAM_TOKEN
from workerprobe.procs import gateway_env, serve


def test_replicas_share_assistants_threads_and_runs() -> None:
    prefix = f"wp-replicas-{uuid.uuid4().hex}:"
    try:
        with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as emulator:
            env = gateway_env(
                emulator.url,
                api_key=KEY,
                token=UPSTREAM_TOKEN,
                redis_url="redis://127.0.0.1:6379/0",
                redis_prefix=prefix,
            )
            with serve(["gateway"], env=env) as a, serve(["gateway"], env=env) as b:
                with (
                    openai.OpenAI(base_url=f"{a.url}/v1", api_key=KEY, max_retries=0) as one,
                    openai.OpenAI(base_url=f"{b.url}/v1", api_key=KEY, max_retries=0) as two,
                ):
                    assistant = one.beta.assistants.create(model=CHAT_MODEL, name="shared")
                    assert two.beta.assistants.retrieve(assistant.id).name == "shared"
                    thread = two.beta.threads.create(messages=[{"role": "user", "content": "What is 3 + 3?"}])
                    run = one.beta.threads.runs.create_and_poll(
                        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
                    )
                    assert run.status == "completed"
                    assert two.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"
                    reply = two.beta.threads.messages.list(thread.id).data[0]
                    assert reply.content[0].text.value == "3 + 3 = 6."  # type: ignore[union-attr]
                    two.beta.threads.delete(thread.id)
                    try:
                        one.beta.threads.messages.list(thread.id)
                        raise AssertionError("a deleted thread's messages were still listed")
                    except openai.NotFoundError:
                        pass
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
