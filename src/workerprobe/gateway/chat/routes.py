"""HTTP handling of /v1/chat/completions: parse, call the service, shape the response."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from workerprobe.gateway.chat.protocol import ChatCompletionRequest
from workerprobe.gateway.chat.service import SPLIT_HEADER, ChatService
from workerprobe.gateway.edge import client_key
from workerprobe.gateway.protocol import parse_body

__all__ = ["create_chat_completion"]


async def create_chat_completion(request: Request) -> Response:
    service: ChatService = request.app.state.chat
    body = await parse_body(request, ChatCompletionRequest, request.app.state.settings.max_body_bytes)
    prepared = service.prepare(
        body,
        key=client_key(request.scope),
        cache_control=request.headers.get("cache-control"),
        split=request.headers.get(SPLIT_HEADER),
    )
    cached = await service.cached(prepared)
    if cached is None:
        await service.admit(prepared)  # budgets: a cache hit costs nothing, so it is always served
    if body.stream:
        stream = await service.open_stream(prepared, cached)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**prepared.headers, "cache-control": "no-cache"}
        )
    completion = await service.complete(prepared, cached)
    return Response(orjson.dumps(completion), media_type="application/json", headers=prepared.headers)
