"""The reference gateway: an OpenAI-compatible API over Workers AI.

GET  /models/search[?query=json]     HTML (no auth) or JSON
GET  /v1/models, /v1/models/{model}
POST /v1/chat/completions            plain and streamed
POST /v1/embeddings
POST /v1/responses (plain and streamed), GET and DELETE /v1/responses/{id}, its input items, cancel
/v1/conversations and their items
/v1/assistants, /v1/threads and runs (OpenAI retired them on 2026-08-26; kept for clients that call them)
GET  /health                         liveness (the process answers) and the machine it runs on
GET  /ready                          readiness: the store answers, the upstream is configured
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from workerprobe.catalogue import Catalogue, load
from workerprobe.cloudflare import WorkersAI
from workerprobe.cloudflare.client import Limits
from workerprobe.cloudflare.errors import UpstreamFailure
from workerprobe.gateway import errors
from workerprobe.gateway.assistants.execution import RunExecution
from workerprobe.gateway.assistants.routes import routes as assistant_routes
from workerprobe.gateway.assistants.runs import RunsService
from workerprobe.gateway.assistants.service import AssistantsService, owner
from workerprobe.gateway.auth import ENV_PROJECT, KeyRing
from workerprobe.gateway.chat.routes import routes as chat_routes
from workerprobe.gateway.chat.service import ChatService
from workerprobe.gateway.edge import AuthFailures, EdgeMiddleware
from workerprobe.gateway.embeddings import EmbeddingsService
from workerprobe.gateway.embeddings import routes as embedding_routes
from workerprobe.gateway.freeplan.budget import Budgets, KeyRateLimiter
from workerprobe.gateway.freeplan.cache import ResponseCache
from workerprobe.gateway.metrics import Metrics, metrics_endpoint
from workerprobe.gateway.models import ModelRouter
from workerprobe.gateway.models import routes as model_routes
from workerprobe.gateway.responses.routes import routes as response_routes
from workerprobe.gateway.responses.service import ResponsesService
from workerprobe.gateway.store import StoreUnavailable, open_store
from workerprobe.gateway.upstream import assemble
from workerprobe.settings import GatewaySettings
from workerprobe.sse import Decoder

__all__ = ["Parts", "create_app"]


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "machine": platform.machine(), "python": platform.python_version()})


async def ready(request: Request) -> Response:
    """200 when the gateway can serve: its store answers and it has an upstream; else 503."""
    state = request.app.state
    checks = {"store": "ok", "upstream": "ok" if state.settings.upstream_url else "not configured"}
    try:
        await asyncio.wait_for(state.store.ping(), timeout=2.0)
    except (StoreUnavailable, TimeoutError):
        checks["store"] = "unavailable"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", **checks})
    error = errors.ServiceUnavailable(
        f"The gateway is not ready: {', '.join(k for k, v in checks.items() if v != 'ok')}."
    )
    return JSONResponse({**error.body(), **checks}, status_code=503, headers=error.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise RuntimeError("unexpected state: isinstance(exc, HTTPException)")
    if exc.status_code == 405:
        # Several routes share a path (one per method): Allow lists the methods of every route
        # with the template of the first one that matches.
        first = next(r for r in request.app.routes if r.matches(request.scope)[0] != Match.NONE)
        template = getattr(first, "path", None)
        allowed = sorted(
            {m for r in request.app.routes if getattr(r, "path", None) == template for m in r.methods or ()}
        )
        error = errors.MethodNotAllowed(
            f"Method {request.method} is not allowed on {request.url.path}", headers={"allow": ", ".join(allowed)}
        )
        return error.response()
    return errors.NotFound(f"Unknown path {request.url.path}", code="unknown_url").response()


@dataclass(frozen=True)
class Parts:
    """The seams of the app factory: what a test double may replace (as httpx takes a transport).
    The selftest builds its defective gateways from these; production code never does."""

    decoder: Callable[[], Decoder] = Decoder  # how the upstream's SSE is decoded
    runs: type[RunsService] = RunsService  # the runs service
    execution: type[RunExecution] = RunExecution  # how a run is executed
    middleware: tuple[Middleware, ...] = ()  # outermost layers, before CORS and the edge


def create_app(
    settings: GatewaySettings | None = None, catalogue: Catalogue | None = None, parts: Parts | None = None
) -> Starlette:
    settings = settings or GatewaySettings()
    catalogue = catalogue or load()
    parts = parts or Parts()
    upstream = WorkersAI(
        settings.upstream_url,
        settings.cf_account_id or "local",
        settings.cf_api_token or "local",
        settings.upstream_timeout_s,
        parts.decoder,
        Limits(settings.upstream_max_body_bytes, settings.upstream_max_event_bytes, settings.upstream_max_stream_bytes),
        settings.upstream_client,
    )
    models = ModelRouter(catalogue, settings)
    store = open_store(settings.database, settings.redis_url, settings.redis_prefix, settings.store_busy_timeout_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await upstream.start()
        await store.open()
        # Objects stored before projects existed belong to API_KEY's project.
        await store.adopt(("assistant", "thread"), owner(ENV_PROJECT))
        await runs.open()
        try:
            yield
        finally:
            await responses.close()
            await runs.close()
            if limiter is not None:
                await limiter.close()
            await store.close()
            await upstream.close()

    keys = KeyRing(store, settings.api_key)
    metrics = Metrics()
    limiter = (
        KeyRateLimiter(settings.key_rate_limit, settings.redis_url, settings.redis_prefix)
        if settings.key_rate_limit
        else None
    )
    failures = (
        AuthFailures(settings.auth_failures_per_minute, exempt=frozenset(settings.auth_failures_exempt))
        if settings.auth_failures_per_minute
        else None
    )
    # The hot POST routes (chat, embeddings) the edge calls itself, past the router.
    hot = {route.path: route.endpoint for route in (*chat_routes, *embedding_routes)}
    middleware = [Middleware(EdgeMiddleware, keys=keys, metrics=metrics, limiter=limiter, failures=failures, hot=hot)]
    if settings.cors_origins:
        middleware.insert(
            0, Middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"])
        )
    middleware[:0] = parts.middleware
    # Each family attaches its own routes. The hot ones are the edge's (`hot`); the router has them
    # too, for their 405s and first, since it tries routes in order.
    routes = [
        *chat_routes,
        *embedding_routes,
        *assistant_routes,
        *response_routes,
        *model_routes,
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            errors.GatewayError: errors.handle,
            UpstreamFailure: errors.handle,
            StoreUnavailable: errors.handle,
            HTTPException: _http_error,
        },
    )
    layers = assemble(upstream, models, settings, metrics)
    budgets = Budgets(store, settings, metrics)
    app.state.settings = settings
    app.state.store = store
    app.state.upstream = layers
    app.state.budgets = budgets
    app.state.models = models
    app.state.metrics = metrics
    app.state.chat = chat = ChatService(
        layers, models, metrics, settings, budgets, ResponseCache(store, settings.cache_ttl_s)
    )
    app.state.embeddings = EmbeddingsService(layers, models, metrics, budgets)
    app.state.assistants = assistants = AssistantsService(store, models)
    app.state.runs = runs = parts.runs(assistants, chat, settings.run_heartbeat_s, parts.execution)
    app.state.responses = responses = ResponsesService(chat, store, runs.liveness)
    return app
