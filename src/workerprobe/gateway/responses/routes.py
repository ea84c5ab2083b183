"""HTTP handling of the Responses and Conversations APIs: parse, call one service function, shape
the answer (JSON, or the events of a streamed response)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from workerprobe.gateway.assistants.service import ListQuery
from workerprobe.gateway.chat.generation import Caller
from workerprobe.gateway.edge import client_key, client_project, request_id
from workerprobe.gateway.idempotency import idempotent
from workerprobe.gateway.protocol import json_response, parse_body
from workerprobe.gateway.responses.protocol import (
    ConversationCreate,
    ConversationItemsCreate,
    ConversationUpdate,
    ResponseCreate,
)
from workerprobe.gateway.responses.service import ConversationsService, ResponsesService, StreamedResponse

__all__ = ["routes"]


def _responses(request: Request) -> tuple[ResponsesService, str]:
    return request.app.state.responses, client_project(request.scope)


def _conversations(request: Request) -> tuple[ConversationsService, str]:
    return request.app.state.responses.conversations, client_project(request.scope)


@idempotent
async def create_response(request: Request) -> Response:
    service, project = _responses(request)
    body = await parse_body(request, ResponseCreate)
    caller = Caller(client_key(request.scope), request_id(request.scope), request.headers.get("cache-control"))
    result = await service.create(project, body, caller)
    if isinstance(result, StreamedResponse):
        return StreamingResponse(
            result.events, media_type="text/event-stream", headers={**result.headers, "cache-control": "no-cache"}
        )
    doc, headers = result
    return json_response(doc, headers)


async def retrieve_response(request: Request) -> Response:
    service, project = _responses(request)
    return json_response(await service.response(project, request.path_params["response_id"]))


async def delete_response(request: Request) -> Response:
    service, project = _responses(request)
    return json_response(await service.delete(project, request.path_params["response_id"]))


async def list_input_items(request: Request) -> Response:
    service, project = _responses(request)
    page = await service.input_items(project, request.path_params["response_id"], ListQuery(request.query_params))
    return json_response(page.body())


async def cancel_response(request: Request) -> Response:
    service, project = _responses(request)
    return json_response(await service.cancel(project, request.path_params["response_id"]))


@idempotent
async def create_conversation(request: Request) -> Response:
    service, project = _conversations(request)
    return json_response(await service.create(project, await parse_body(request, ConversationCreate, optional=True)))


async def retrieve_conversation(request: Request) -> Response:
    service, project = _conversations(request)
    return json_response(await service.conversation(project, request.path_params["conversation_id"]))


async def update_conversation(request: Request) -> Response:
    service, project = _conversations(request)
    body = await parse_body(request, ConversationUpdate)
    return json_response(await service.update(project, request.path_params["conversation_id"], body))


async def delete_conversation(request: Request) -> Response:
    service, project = _conversations(request)
    return json_response(await service.delete(project, request.path_params["conversation_id"]))


async def list_items(request: Request) -> Response:
    service, project = _conversations(request)
    page = await service.items(project, request.path_params["conversation_id"], ListQuery(request.query_params))
    return json_response(page.body())


@idempotent
async def create_items(request: Request) -> Response:
    service, project = _conversations(request)
    body = await parse_body(request, ConversationItemsCreate)
    return json_response(await service.add_items(project, request.path_params["conversation_id"], body))


async def retrieve_item(request: Request) -> Response:
    service, project = _conversations(request)
    params = request.path_params
    return json_response(await service.item(project, params["conversation_id"], params["item_id"]))


async def delete_item(request: Request) -> Response:
    service, project = _conversations(request)
    params = request.path_params
    return json_response(await service.delete_item(project, params["conversation_id"], params["item_id"]))


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", retrieve_conversation, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", update_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/items", list_items, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items", create_items, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", retrieve_item, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", delete_item, methods=["DELETE"]),
]
