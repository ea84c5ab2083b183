"""The emulator's HTTP surface: thin routes over `Emulator`.

POST /client/v4/accounts/{account}/ai/run/{model}      envelope or SSE
POST /client/v4/accounts/{account}/ai/v1/chat/completions
POST /client/v4/accounts/{account}/ai/v1/responses            the GPT-OSS models, non-streaming
POST /client/v4/accounts/{account}/ai/v1/embeddings
GET  /client/v4/accounts/{account}/ai/v1/models         405, as the live API
GET  /client/v4/accounts/{account}/ai/models/search
GET  /__emulator/usage    POST /__emulator/clock    POST /__emulator/reset   (inspection)
GET  /__emulator/trace    the server's clock per streamed call, by the client's x-request-id

`?queueRequest=true` on /ai/run is the batch API (batch.py). A request with `cf-aig-gateway-id`
(or every request, with `ai_gateway`) is answered as through AI Gateway: `cf-aig-request-id`,
`cf-aig-log-id` and `cf-aig-event-id` on the answer, one lowercase UUIDv7 (changelog 2026-10-08).
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import time
import uuid
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workerprobe.catalogue import Catalogue, load
from workerprobe.emulator.errors import BadInput, UpstreamError
from workerprobe.emulator.service import Call, Emulator, Reply
from workerprobe.settings import EmulatorSettings

__all__ = ["create_app"]

_ACCOUNT = "/client/v4/accounts/{account_id}/ai"


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _authenticate(request: Request, emulator: Emulator) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UpstreamError("authentication")
    expected = emulator.settings.api_token
    if expected and not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise UpstreamError("authentication")


async def _body(request: Request, emulator: Emulator) -> object:
    limit = emulator.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UpstreamError("request_too_large")
    raw = await request.body()
    if len(raw) > limit:
        raise UpstreamError("request_too_large")
    if not raw:
        raise UpstreamError("bad_input", detail="Request is missing a JSON body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"Malformed JSON in request body: {exc}") from None


async def _call(request: Request, model_name: str | None) -> tuple[Emulator, Call]:
    arrived = time.monotonic()
    emulator = _emulator(request)
    _authenticate(request, emulator)
    body = await _body(request, emulator)
    if model_name is None:
        name = body.get("model") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise BadInput("required properties at '/' are 'model'")
        model_name = name
    stall = request.headers.get("x-emulate-stall-ms")
    call = Call(
        account=request.path_params["account_id"],
        model_name=model_name,
        body=body,
        fault_header=request.headers.get("x-emulate-fault"),
        stall_ms=float(stall) if stall and stall.replace(".", "", 1).isdigit() else None,
        trace_id=request.headers.get("x-request-id") or emulator.anonymous_trace_id(),
        arrived=arrived,
    )
    return emulator, call


async def run(request: Request) -> Reply:
    emulator, call = await _call(request, request.path_params["model"])
    if request.query_params.get("queueRequest") == "true":
        return emulator.batch(call, int(request.headers.get("content-length") or 0))
    return await emulator.run(call, "run")


async def v1_chat_completions(request: Request) -> Reply:
    emulator, call = await _call(request, None)
    if emulator.settings.text_parts:
        _join_text_parts(call.body)
    return await emulator.run(call, "v1", task="text-generation")


def _join_text_parts(body: Any) -> None:
    """Each message whose content is a list of text parts gets their texts, joined, as its string."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in content
        ):
            message["content"] = "\n".join(part["text"] for part in content)


async def v1_responses(request: Request) -> Reply:
    emulator, call = await _call(request, None)
    return await emulator.responses(call)


async def v1_embeddings(request: Request) -> Reply:
    emulator, call = await _call(request, None)
    return await emulator.run(call, "v1", task="text-embeddings")


async def v1_models(request: Request) -> Response:
    raise UpstreamError("method_not_allowed", method=request.method)


async def models_search(request: Request) -> Response:
    emulator = _emulator(request)
    _authenticate(request, emulator)
    query = request.query_params

    def positive(name: str, default: int | None) -> int | None:
        value = query.get(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < 1:
            raise BadInput(f"Value at '/{name}' must be a positive integer")
        return int(value)

    return emulator.search(query.get("task"), query.get("search"), positive("page", 1) or 1, positive("per_page", None))


async def usage(request: Request) -> Response:
    emulator = _emulator(request)
    day = request.query_params.get("date")
    try:
        when = dt.date.fromisoformat(day) if day else None
    except ValueError:
        return JSONResponse({"error": f"bad date {day!r}"}, status_code=400)
    return JSONResponse(emulator.meter.report(when))


async def trace(request: Request) -> Response:
    """Per streamed call (by the x-request-id it came with): when it arrived, when its response
    started and when each token event was sent, in seconds of time.monotonic(); `?ids=a,b` for
    some of them."""
    traces = _emulator(request).traces
    wanted = request.query_params.get("ids")
    chosen = {i: traces[i] for i in wanted.split(",") if i in traces} if wanted else dict(traces)
    return Response(orjson.dumps(chosen), media_type="application/json")


async def clock(request: Request) -> Response:
    """Test mode: move the emulator's clock. Body: {"set": ISO-8601} or {"advance_s": seconds}."""
    emulator = _emulator(request)
    if not emulator.settings.test_mode:
        return JSONResponse({"error": "the clock moves only in test mode"}, status_code=403)
    body = orjson.loads(await request.body() or b"{}")
    if "set" in body:
        emulator.clock.set(dt.datetime.fromisoformat(body["set"]))
    if "advance_s" in body:
        emulator.clock.advance(float(body["advance_s"]))
    return JSONResponse({"now": dt.datetime.fromtimestamp(emulator.clock.now(), dt.UTC).isoformat()})


async def reset(request: Request) -> Response:
    emulator = _emulator(request)
    if not emulator.settings.test_mode:
        return JSONResponse({"error": "reset works only in test mode"}, status_code=403)
    emulator.meter.reset()
    emulator.limiter.reset()
    emulator.clock.offset = 0.0
    return JSONResponse({"reset": True})


async def _upstream_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, UpstreamError):
        raise RuntimeError("unexpected state: isinstance(exc, UpstreamError)")
    account = request.path_params.get("account_id")
    if account is not None:
        _emulator(request).record_error(account, exc)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise RuntimeError("unexpected state: isinstance(exc, HTTPException)")
    if exc.status_code == 405:
        return UpstreamError("method_not_allowed", method=request.method).response()
    return UpstreamError("no_route").response()


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, 74 random bits; lowercase."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    return str(uuid.UUID(int=value))


class AIGatewayIds:
    """The ids AI Gateway puts on its answers; one-step requests have one id for all three."""

    def __init__(self, app: ASGIApp, always: bool) -> None:
        self.app = app
        self.always = always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            self.always or any(name == b"cf-aig-gateway-id" for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        ident = uuid7().encode()

        async def with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"cf-aig-request-id", ident), (b"cf-aig-log-id", ident), (b"cf-aig-event-id", ident)]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_ids)


def create_app(settings: EmulatorSettings | None = None, catalogue: Catalogue | None = None) -> Starlette:
    settings = settings or EmulatorSettings()
    routes = [
        Route(f"{_ACCOUNT}/run/{{model:path}}", run, methods=["POST"]),
        Route(f"{_ACCOUNT}/v1/chat/completions", v1_chat_completions, methods=["POST"]),
        Route(f"{_ACCOUNT}/v1/responses", v1_responses, methods=["POST"]),
        Route(f"{_ACCOUNT}/v1/embeddings", v1_embeddings, methods=["POST"]),
        Route(f"{_ACCOUNT}/v1/models", v1_models, methods=["GET", "POST"]),
        Route(f"{_ACCOUNT}/models/search", models_search, methods=["GET"]),
        Route("/__emulator/usage", usage, methods=["GET"]),
        Route("/__emulator/trace", trace, methods=["GET"]),
        Route("/__emulator/clock", clock, methods=["POST"]),
        Route("/__emulator/reset", reset, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={UpstreamError: _upstream_error, HTTPException: _http_error},
        middleware=[Middleware(AIGatewayIds, always=settings.ai_gateway)],
    )
    app.state.emulator = Emulator(settings, catalogue or load())
    return app
