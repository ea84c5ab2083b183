"""The chat family's upstream, as layers of one shape (`run`, `open`), each wrapping the next:

    Fallback  ->  Resilient (retries, freeplan/retry.py)  ->  WorkersAI (the REST client)

The fallback model answers when a model is out of capacity after the retries; the answer's
headers name it. Upstream failures become the client-facing OpenAI errors here, once
(`errors.from_upstream`), and every call's time is measured here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from workerprobe.catalogue import Model
from workerprobe.cloudflare.errors import CloudflareError, UpstreamFailure
from workerprobe.gateway import overhead
from workerprobe.gateway.chat.plan import Prepared
from workerprobe.gateway.errors import from_upstream
from workerprobe.gateway.freeplan.retry import Resilient
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter
from workerprobe.settings import GatewaySettings

__all__ = ["FALLBACK_HEADER", "Fallback"]

T = TypeVar("T")
FALLBACK_HEADER = "x-workerprobe-fallback-model"


class Fallback:
    def __init__(self, inner: Resilient, router: ModelRouter, settings: GatewaySettings, metrics: Metrics) -> None:
        self.inner = inner
        self.router = router
        self.fallbacks = settings.fallback_models
        self.metrics = metrics

    def model_for(self, model: Model) -> Model | None:
        """The model that answers for `model` when it cannot (none, when none is set)."""
        name = self.fallbacks.get(model.name, self.fallbacks.get("*"))
        if name is None or name == model.name:
            return None
        return self.router.lookup(name)

    def use(self, prepared: Prepared, model: Model, cause: str) -> None:
        self.metrics.method("fallback", cause)
        prepared.served.headers[FALLBACK_HEADER] = model.name
        prepared.served.model = model

    async def _call(self, prepared: Prepared, call: Callable[[str], Awaitable[T]]) -> T:
        started = time.perf_counter()
        name = prepared.called.name
        try:
            try:
                return await call(name)
            except CloudflareError as exc:
                fallback = self.model_for(prepared.called) if exc.capacity else None
                if fallback is None:
                    raise
                self.use(prepared, fallback, "capacity")
                return await call(fallback.name)
        except UpstreamFailure as exc:
            raise from_upstream(exc, prepared.resolved.requested) from None
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.upstream(name, elapsed)
            overhead.waited(elapsed)

    async def run(self, prepared: Prepared, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"x-request-id": prepared.request_id} if prepared.request_id else None

        async def run(name: str) -> dict[str, Any]:
            result = await self.inner.run(name, body, headers)
            if not isinstance(result, dict):  # never an empty answer passed off as a real one
                raise UpstreamFailure(f"Workers AI answered without a result ({type(result).__name__})")
            return result

        return await self._call(prepared, run)

    async def open(
        self, prepared: Prepared, body: dict[str, Any]
    ) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
        headers = {"x-request-id": prepared.request_id} if prepared.request_id else None

        async def opened(name: str) -> tuple[AsyncGenerator[dict[str, Any]], dict[str, Any] | None]:
            return await self.inner.open(name, body, headers)

        return await self._call(prepared, opened)
