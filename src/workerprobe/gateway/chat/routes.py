"""HTTP handling of /v1/chat/completions: parse, translate into the chat core's request, make one
call, and answer with JSON or SSE by what comes back."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from workerprobe.gateway.chat.generation import Caller
from workerprobe.gateway.chat.protocol import ChatCompletionRequest
from workerprobe.gateway.chat.service import SPLIT_HEADER, ChatService, Streamed
from workerprobe.gateway.chat.translate import generation_of
from workerprobe.gateway.edge import client_key, request_id
from workerprobe.gateway.protocol import parse_body

__all__ = ["create_chat_completion", "routes"]

_SPLIT = SPLIT_HEADER.lower().encode("latin-1")


async def create_chat_completion(request: Request) -> Response:
    service: ChatService = request.app.state.chat
    body = await parse_body(request, ChatCompletionRequest)
    cache_control = split = None
    for name, value in request.scope["headers"]:  # one pass (the first of each, as Headers.get)
        if name == b"cache-control" and cache_control is None:
            cache_control = value.decode("latin-1")
        elif name == _SPLIT and split is None:
            split = value.decode("latin-1")
    caller = Caller(client_key(request.scope), request_id(request.scope), cache_control, split)
    result = await service.create(generation_of(body, caller))
    if isinstance(result, Streamed):
        return StreamingResponse(
            service.render_stream(result),
            media_type="text/event-stream",
            headers={**result.headers, "cache-control": "no-cache"},
        )
    return Response(orjson.dumps(service.render(result)), media_type="application/json", headers=result.headers)


routes = [Route("/v1/chat/completions", create_chat_completion, methods=["POST"])]
