"""Two gateway replicas sharing state in Redis (127.0.0.1:6379)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import redis

from tests.gateway.conftest import CHAT_MODEL, KEY, UPSTREAM_TOKEN
from workerprobe.procs import gateway_env, serve


@contextmanager
def _shared_in_redis() -> Iterator[dict[str, str]]:
    """An emulator, and the environment of gateways sharing their state in Redis under a prefix
    of their own (removed at the end)."""
    prefix = f"wp-replicas-{uuid.uuid4().hex}:"
    try:
        with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as emulator:
            yield gateway_env(
                emulator.url,
                api_key=KEY,
                token=UPSTREAM_TOKEN,
                redis_url="redis://127.0.0.1:6379/0",
                redis_prefix=prefix,
            )
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_replicas_share_assistants_threads_and_runs() -> None:
    with _shared_in_redis() as env:
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


def _children(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").iterdir():
            for child in (task / "children").read_text().split():
                found.append(int(child))
                todo.append(int(child))
    return found


def test_workers_share_state_in_redis_and_each_serves() -> None:
    """`workerprobe gateway --workers 2`: two server processes on one port, their state in Redis.
    An assistant made on one connection is read on fresh connections, which the kernel hands to
    either worker; and both workers answered (each counts its own requests in /metrics)."""
    with _shared_in_redis() as env:
        with serve(["gateway", "--workers", "2"], env=env) as gateway:
            with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=2) as client:
                assistant = client.beta.assistants.create(model=CHAT_MODEL, name="across workers")
            pids: set[str] = set()
            for _ in range(40):  # a new connection each time
                with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
                    got = http.get(f"{gateway.url}/v1/assistants/{assistant.id}")
                    assert got.status_code == 200, got.text
                    assert got.json()["name"] == "across workers"
                    metrics = http.get(f"{gateway.url}/metrics").text
                    pids.add(
                        next(line for line in metrics.splitlines() if line.startswith("workerprobe_gateway_process"))
                    )
            children = _children(gateway.process.pid)
            assert len(pids) == 2, f"one worker answered every connection: {pids} (children {children})"
            assert all(line.split('"')[1] in map(str, children) for line in pids)


def test_workers_without_redis_are_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workerprobe", "gateway", "--workers", "2", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("WORKERPROBE_GATEWAY_REDIS")},
    )
    assert result.returncode == 2
    assert "WORKERPROBE_GATEWAY_REDIS_URL" in result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "workerprobe", "gateway", "--workers", "0"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "from 1 to 64" in bad.stderr
