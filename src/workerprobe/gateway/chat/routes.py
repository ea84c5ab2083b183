"""HTTP handling of /v1/chat/completions: parse, call the service, shape the response."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from workerprobe.gateway.chat.protocol import ChatCompletionRequest
from workerprobe.gateway.chat.service import ChatService
from workerprobe.gateway.protocol import parse_body

__all__ = ["create_chat_completion"]


async def create_chat_completion(request: Request) -> Response:
    service: ChatService = request.app.state.chat
    body = await parse_body(request, ChatCompletionRequest, request.app.state.settings.max_body_bytes)
    prepared = service.prepare(body)
    headers = prepared.resolved.headers()
    if body.stream:
        stream = await service.open_stream(prepared)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
        )
    completion = await service.complete(prepared)
    return Response(orjson.dumps(completion), media_type="application/json", headers=headers)
