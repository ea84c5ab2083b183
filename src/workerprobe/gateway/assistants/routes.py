"""HTTP handling of the Assistants API: parse, call one service function, shape the response."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from workerprobe.gateway.assistants.protocol import (
    AssistantCreate,
    AssistantModify,
    MessageCreate,
    MetadataModify,
    RunCreate,
    SubmitToolOutputs,
    ThreadAndRunCreate,
    ThreadCreate,
)
from workerprobe.gateway.assistants.runs import RunsService
from workerprobe.gateway.assistants.service import AssistantsService, ListQuery
from workerprobe.gateway.edge import client_key, client_project
from workerprobe.gateway.idempotency import idempotent
from workerprobe.gateway.protocol import T, json_response, parse_body

__all__ = ["routes"]


def _services(request: Request) -> tuple[AssistantsService, RunsService, str]:
    """The services, and the project of the caller's key (whose objects it may reach)."""
    return request.app.state.assistants, request.app.state.runs, client_project(request.scope)


async def _body(request: Request, kind: type[T], *, optional: bool = False) -> T:
    return await parse_body(request, kind, optional=optional)


@idempotent
async def create_assistant(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(await service.create_assistant(project, await _body(request, AssistantCreate)))


async def list_assistants(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response((await service.list_assistants(project, ListQuery(request.query_params))).body())


async def retrieve_assistant(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(await service.assistant(project, request.path_params["assistant_id"]))


async def modify_assistant(request: Request) -> Response:
    service, _, project = _services(request)
    body = await _body(request, AssistantModify)
    return json_response(await service.modify_assistant(project, request.path_params["assistant_id"], body))


async def delete_assistant(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(await service.delete_assistant(project, request.path_params["assistant_id"]))


@idempotent
async def create_thread(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(await service.create_thread(project, await _body(request, ThreadCreate, optional=True)))


async def retrieve_thread(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(await service.thread(project, request.path_params["thread_id"]))


async def modify_thread(request: Request) -> Response:
    service, _, project = _services(request)
    body = await _body(request, MetadataModify)
    return json_response(await service.modify_thread(project, request.path_params["thread_id"], body))


async def delete_thread(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(await service.delete_thread(project, request.path_params["thread_id"]))


@idempotent
async def create_message(request: Request) -> Response:
    service, _, project = _services(request)
    body = await _body(request, MessageCreate)
    return json_response(await service.create_message(project, request.path_params["thread_id"], body))


async def list_messages(request: Request) -> Response:
    service, _, project = _services(request)
    query = ListQuery(request.query_params)
    page = await service.list_messages(
        project, request.path_params["thread_id"], query, request.query_params.get("run_id")
    )
    return json_response(page.body())


async def retrieve_message(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(
        await service.message(project, request.path_params["thread_id"], request.path_params["message_id"])
    )


async def modify_message(request: Request) -> Response:
    service, _, project = _services(request)
    body = await _body(request, MetadataModify)
    path = request.path_params
    return json_response(await service.modify_message(project, path["thread_id"], path["message_id"], body))


async def delete_message(request: Request) -> Response:
    service, _, project = _services(request)
    return json_response(
        await service.delete_message(project, request.path_params["thread_id"], request.path_params["message_id"])
    )


def _started(runs: RunsService, run: dict[str, Any], stream: bool | None, key: str) -> Response:
    if stream:
        return StreamingResponse(
            runs.stream(run, key), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    runs.start(run, key)
    return json_response(run)


@idempotent
async def create_run(request: Request) -> Response:
    _, runs, project = _services(request)
    body = await _body(request, RunCreate)
    return _started(
        runs, await runs.create(project, request.path_params["thread_id"], body), body.stream, client_key(request.scope)
    )


@idempotent
async def create_thread_and_run(request: Request) -> Response:
    _, runs, project = _services(request)
    body = await _body(request, ThreadAndRunCreate)
    return _started(runs, await runs.create_thread_and_run(project, body), body.stream, client_key(request.scope))


async def list_runs(request: Request) -> Response:
    _, runs, project = _services(request)
    return json_response(
        (await runs.list_runs(project, request.path_params["thread_id"], ListQuery(request.query_params))).body()
    )


async def retrieve_run(request: Request) -> Response:
    _, runs, project = _services(request)
    return json_response(await runs.run(project, request.path_params["thread_id"], request.path_params["run_id"]))


async def modify_run(request: Request) -> Response:
    _, runs, project = _services(request)
    body = await _body(request, MetadataModify)
    return json_response(
        await runs.modify_run(project, request.path_params["thread_id"], request.path_params["run_id"], body.metadata)
    )


async def submit_tool_outputs(request: Request) -> Response:
    _, runs, project = _services(request)
    body = await _body(request, SubmitToolOutputs)
    path = request.path_params
    run = await runs.submit_tool_outputs(project, path["thread_id"], path["run_id"], body)
    return _started(runs, run, body.stream, client_key(request.scope))


async def list_run_steps(request: Request) -> Response:
    _, runs, project = _services(request)
    path = request.path_params
    page = await runs.list_steps(project, path["thread_id"], path["run_id"], ListQuery(request.query_params))
    return json_response(page.body())


async def retrieve_run_step(request: Request) -> Response:
    _, runs, project = _services(request)
    path = request.path_params
    return json_response(await runs.step(project, path["thread_id"], path["run_id"], path["step_id"]))


async def cancel_run(request: Request) -> Response:
    _, runs, project = _services(request)
    return json_response(await runs.cancel(project, request.path_params["thread_id"], request.path_params["run_id"]))


routes = [
    Route("/v1/assistants", create_assistant, methods=["POST"]),
    Route("/v1/assistants", list_assistants, methods=["GET"]),
    Route("/v1/assistants/{assistant_id}", retrieve_assistant, methods=["GET"]),
    Route("/v1/assistants/{assistant_id}", modify_assistant, methods=["POST"]),
    Route("/v1/assistants/{assistant_id}", delete_assistant, methods=["DELETE"]),
    Route("/v1/threads", create_thread, methods=["POST"]),
    Route("/v1/threads/runs", create_thread_and_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}", retrieve_thread, methods=["GET"]),
    Route("/v1/threads/{thread_id}", modify_thread, methods=["POST"]),
    Route("/v1/threads/{thread_id}", delete_thread, methods=["DELETE"]),
    Route("/v1/threads/{thread_id}/messages", create_message, methods=["POST"]),
    Route("/v1/threads/{thread_id}/messages", list_messages, methods=["GET"]),
    Route("/v1/threads/{thread_id}/messages/{message_id}", retrieve_message, methods=["GET"]),
    Route("/v1/threads/{thread_id}/messages/{message_id}", modify_message, methods=["POST"]),
    Route("/v1/threads/{thread_id}/messages/{message_id}", delete_message, methods=["DELETE"]),
    Route("/v1/threads/{thread_id}/runs", create_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}", retrieve_run, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}", modify_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", submit_tool_outputs, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/steps", list_run_steps, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", retrieve_run_step, methods=["GET"]),
]
