"""The upstream every family calls: layers of one shape (`run` and `open` of a `Call`), each
wrapping the next, put together once (`assemble`, called by the app factory):

    Fallback  ->  Resilient (retries, freeplan/retry.py)  ->  WorkersAI (the REST client)

A call names the model to ask; what comes back names the model that answered (the fallback model
when the asked one is out of capacity after the retries). Upstream failures become the
client-facing OpenAI errors here, once (`errors.from_upstream`), for a whole answer, a stream's
opening and its later events alike; and the time of every call is measured here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from workerprobe.catalogue import Model
from workerprobe.cloudflare import WorkersAI
from workerprobe.cloudflare.errors import CloudflareError, UpstreamFailure
from workerprobe.gateway import overhead
from workerprobe.gateway.errors import from_upstream
from workerprobe.gateway.freeplan.retry import Resilient
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter
from workerprobe.settings import GatewaySettings

__all__ = ["FALLBACK_HEADER", "Answered", "Call", "Fallback", "Opened", "assemble"]

T = TypeVar("T")
FALLBACK_HEADER = "x-workerprobe-fallback-model"


@dataclass(frozen=True, slots=True)
class Call:
    """One upstream call: the model asked, the body, headers to send, and the model name the
    client used (its error messages name that one)."""

    model: Model
    body: dict[str, Any]
    headers: dict[str, str] | None = None
    requested: str = ""


@dataclass(frozen=True, slots=True)
class Answered:
    result: dict[str, Any]
    model: Model  # the model that answered


@dataclass(frozen=True, slots=True)
class Opened:
    """A stream and its first event (None: it ended at once)."""

    events: AsyncGenerator[dict[str, Any]]
    first: dict[str, Any] | None
    model: Model


class Fallback:
    def __init__(self, inner: Resilient, router: ModelRouter, settings: GatewaySettings, metrics: Metrics) -> None:
        self.inner = inner
        self.router = router
        self.fallbacks = settings.fallback_models
        self.metrics = metrics

    def model_for(self, model: Model) -> Model | None:
        """The model that answers for `model` when it cannot (none when none is set, or when the
        one set does another task)."""
        name = self.fallbacks.get(model.name, self.fallbacks.get("*"))
        fallback = self.router.lookup(name) if name is not None and name != model.name else None
        return fallback if fallback is not None and fallback.task == model.task else None

    async def _call(self, call: Call, send: Callable[[Model], Awaitable[T]]) -> tuple[T, Model]:
        waited = overhead.current()
        started = time.perf_counter()
        if waited is not None:
            waited.enter(started)
        try:
            try:
                return await send(call.model), call.model
            except CloudflareError as exc:
                fallback = self.model_for(call.model) if exc.capacity else None
                if fallback is None:
                    raise
                self.metrics.method("fallback", "capacity")
                return await send(fallback), fallback
        except UpstreamFailure as exc:
            raise from_upstream(exc, call.requested) from None
        finally:
            ended = time.perf_counter()
            if waited is not None:
                waited.leave(ended)
            self.metrics.upstream(call.model.name, ended - started)

    async def run(self, call: Call) -> Answered:
        async def run(model: Model) -> dict[str, Any]:
            result = await self.inner.run(model.name, call.body, call.headers)
            if not isinstance(result, dict):  # never an empty answer passed off as a real one
                raise UpstreamFailure(f"Workers AI answered without a result ({type(result).__name__})")
            return result

        result, model = await self._call(call, run)
        return Answered(result, model)

    async def responses(self, call: Call) -> Answered:
        """`/ai/v1/responses` (the GPT-OSS models): `call.body` is the Responses request (its model
        is set to the one that answers)."""

        async def respond(model: Model) -> dict[str, Any]:
            return await self.inner.responses({**call.body, "model": model.name}, call.headers)

        result, model = await self._call(call, respond)
        return Answered(result, model)

    async def open(self, call: Call) -> Opened:
        async def opened(model: Model) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
            return await self.inner.open(model.name, call.body, call.headers)

        (events, first), model = await self._call(call, opened)
        return Opened(self._mapped(events, call.requested), first, model)

    async def _mapped(self, events: AsyncGenerator[dict[str, Any]], requested: str) -> AsyncGenerator[dict[str, Any]]:
        """The events after the first, a failure among them as the client-facing error."""
        try:
            async for event in events:
                yield event
        except UpstreamFailure as exc:
            raise from_upstream(exc, requested) from None
        finally:
            await events.aclose()


def assemble(client: WorkersAI, router: ModelRouter, settings: GatewaySettings, metrics: Metrics) -> Fallback:
    """The upstream of every family: fallback > retry > client."""
    return Fallback(Resilient(client, settings, metrics), router, settings, metrics)
