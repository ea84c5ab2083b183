"""The chat core's parts built directly over a small fake upstream (no server): the answer loop, the
service and the fallback layer, each against the failure it must survive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from workerprobe.catalogue import load
from workerprobe.cloudflare.errors import CloudflareError, StreamBroken
from workerprobe.gateway.chat.generation import Caller, Generation
from workerprobe.gateway.chat.service import Answer, ChatService, Streamed
from workerprobe.gateway.errors import BadGateway, GatewayError
from workerprobe.gateway.freeplan.budget import Budgets
from workerprobe.gateway.freeplan.cache import ResponseCache
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter
from workerprobe.gateway.store import open_store
from workerprobe.gateway.upstream import FALLBACK_HEADER, Fallback
from workerprobe.settings import GatewaySettings

MODEL = load().default("text-generation").name
OTHER = "@cf/meta/llama-3.2-1b-instruct"


class FakeClient:
    """The innermost layer's shape (`run`, `open` by model name): scripted answers per model, and
    what happened to the streams it opened."""

    def __init__(self) -> None:
        self.capacity: set[str] = set()  # models out of capacity (3040)
        self.stream: list[dict[str, Any] | BaseException | float] = []  # events, failures, pauses
        self.closed_at: float | None = None  # when the last stream was closed
        self.asked: list[str] = []

    def _check(self, model: str) -> None:
        self.asked.append(model)
        if model in self.capacity:
            raise CloudflareError(429, 3040, "Capacity temporarily exceeded")

    async def run(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        self._check(model)
        return {"response": f"answer of {model}", "usage": {"prompt_tokens": 3, "completion_tokens": 3}}

    async def open(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
        self._check(model)
        events = self._events()
        return events, await anext(events, None)

    async def _events(self) -> AsyncGenerator[dict[str, Any]]:
        try:
            for step in self.stream:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, float):
                    await asyncio.sleep(step)
                    continue
                yield step
        finally:
            self.closed_at = asyncio.get_running_loop().time()


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[tuple[ChatService, FakeClient, Metrics]]:
    settings = GatewaySettings(keepalive_s=0.01, fallback_models={"*": OTHER}, database=str(tmp_path / "g.sqlite3"))
    store = open_store(settings.database, None)
    await store.open()
    metrics, router, client = Metrics(), ModelRouter(load(), settings), FakeClient()
    upstream = Fallback(client, router, settings, metrics)  # type: ignore[arg-type]
    service = ChatService(
        upstream, router, metrics, settings, Budgets(store, settings, metrics), ResponseCache(store, 0)
    )
    yield service, client, metrics
    await store.close()


def _ask(stream: bool = False) -> Generation:
    return Generation(MODEL, [{"role": "user", "content": "hi"}], max_tokens=32, stream=stream, caller=Caller("k"))


async def test_a_client_leaving_during_a_keepalive_wait_closes_the_upstream_stream_at_once(core) -> None:
    """The answer loop's keep-alive wait is cancelled when the client leaves: the upstream stream
    is closed then, not at its next event 30 s later, and no `aclose(): asynchronous generator is
    already running` is raised."""
    service, client, _ = core
    client.stream = [{"response": "Hel"}, {"response": "lo"}, 30.0, {"response": "late"}]
    streamed = await service.create(_ask(stream=True))
    assert isinstance(streamed, Streamed)
    items = streamed.items
    assert await anext(items) == "Hel" and await anext(items) == "lo"
    assert await anext(items) is None  # a keep-alive: the loop waits for the next event
    left = asyncio.get_running_loop().time()
    await items.aclose()  # the client left
    assert client.closed_at is not None and client.closed_at - left < 1.0


async def test_a_stream_cut_midway_ends_with_an_error_event_after_what_was_sent(core) -> None:
    service, client, metrics = core
    client.stream = [{"response": "Hel"}, StreamBroken("the Workers AI stream broke: reset")]
    streamed = await service.create(_ask(stream=True))
    assert isinstance(streamed, Streamed)
    body = b"".join([chunk async for chunk in service.render_stream(streamed)]).decode()
    events = [line for line in body.splitlines() if line.startswith("data: ")]
    assert '"Hel"' in events[1] and '"upstream_error"' in events[-2] and events[-1] == "data: [DONE]"
    assert metrics.errors["upstream_error"] == 1
    assert not any('"finish_reason":"stop"' in e for e in events)  # never passed off as a whole answer


async def test_a_model_out_of_capacity_is_answered_by_its_fallback(core) -> None:
    service, client, metrics = core
    client.capacity = {MODEL}
    answer = await service.create(_ask())
    assert isinstance(answer, Answer)
    assert client.asked == [MODEL, OTHER]
    assert answer.served.model.name == OTHER and answer.headers[FALLBACK_HEADER] == OTHER
    assert answer.outcome.text == f"answer of {OTHER}" and metrics.methods[("fallback", "capacity")] == 1
    client.capacity = {MODEL, OTHER}  # and when the fallback is out too: a 429 in the envelope
    with pytest.raises(GatewayError) as refused:
        await service.create(_ask())
    assert refused.value.status == 429 and refused.value.code == "capacity_exceeded"


async def test_an_upstream_failure_reaches_the_loop_as_the_client_facing_error(core) -> None:
    service, client, _ = core
    client.stream = [StreamBroken("the Workers AI stream ended without [DONE]")]
    with pytest.raises(BadGateway):
        await service.create(_ask(stream=True))  # before the first event: raised, nothing sent
