"""Responses and Conversations over the chat core.

A response is a `Generation` like a chat completion or a run (`ChatService.create`, the one way
through: budgets, cache, continuation past the token cap, retries and the fallback model apply),
built from the response's context: the instructions, then the items of the conversation or of the
chain of previous responses, then this request's input. Its answer becomes output items; a cut one
is `status: incomplete` with `incomplete_details.reason: max_output_tokens` (never a silent
`completed`), a blocked one `content_filter`.

Stored (unless `store: false`) under the caller's project, as assistants are: the response, and its
input items under it; a conversation and its items likewise. Another project's id reads as unknown
(404, nothing leaks). A response given a conversation adds its input and output items to it once it
is done, all of them or none.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from workerprobe import sse
from workerprobe.catalogue import Model
from workerprobe.gateway.assistants.liveness import Liveness
from workerprobe.gateway.assistants.service import ListQuery, owner
from workerprobe.gateway.chat.generation import Caller, Generation, Message, json_format
from workerprobe.gateway.chat.plan import Outcome, Streamed
from workerprobe.gateway.chat.service import ChatService
from workerprobe.gateway.errors import BadRequest, GatewayError, NotFound, QuotaExceeded, from_exception
from workerprobe.gateway.protocol import declared
from workerprobe.gateway.responses import items as it
from workerprobe.gateway.responses import passthrough
from workerprobe.gateway.responses.protocol import (
    ConversationCreate,
    ConversationItemsCreate,
    ConversationUpdate,
    ResponseCreate,
    ResponseFunctionTool,
)
from workerprobe.gateway.store import Page, Store, StoreUnavailable
from workerprobe.gateway.store.base import Document, New, every
from workerprobe.gateway.upstream import Call
from workerprobe.ids import unique_hex

__all__ = ["ConversationsService", "ResponsesService", "StreamedResponse"]

RESPONSE, INPUT_ITEM = "response", "response_item"
CONVERSATION, CONVERSATION_ITEM = "conversation", "conversation_item"
MAX_CHAIN = 100  # previous responses followed, at most (a longer chain is a 400)


@dataclass(frozen=True, slots=True)
class StreamedResponse:
    events: AsyncIterator[bytes]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Request:
    """One response being made: what the client asked, its id, its input items and where it goes."""

    project: str
    body: ResponseCreate
    inputs: list[Document]
    conversation: str | None


def _usage(outcome: Outcome) -> dict[str, Any]:
    usage = outcome.usage
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _ending(outcome: Outcome) -> tuple[str, dict[str, str] | None]:
    if outcome.finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if outcome.finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


class ResponsesService:
    def __init__(self, chat: ChatService, store: Store, liveness: Liveness) -> None:
        self.chat = chat
        self.store = store
        self.liveness = liveness  # the runs' (one heartbeat per process)
        self.conversations = ConversationsService(store)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    # -- create ------------------------------------------------------------------------------

    async def create(
        self, project: str, body: ResponseCreate, caller: Caller
    ) -> tuple[Document, dict[str, str]] | StreamedResponse:
        """A whole response (stored, with the answer's headers), a streamed one's events, or a
        background one, queued (stored at once, answered by a task of this process)."""
        if body.background and body.stream:
            raise BadRequest("a background response cannot be streamed by this gateway", param="stream")
        if body.background and body.store is False:
            raise BadRequest("a background response must be stored: leave store unset or true", param="store")
        if {"previous_response_id", "conversation"} <= body.model_fields_set:
            raise BadRequest(
                "previous_response_id and conversation cannot be used together", param="previous_response_id"
            )
        conversation = body.conversation
        if conversation is not None and not isinstance(conversation, str):
            conversation = conversation.id
        inputs = it.read_input(body.input)
        context: list[Document] = []
        if body.previous_response_id is not None:
            context = await self._chain(project, body.previous_response_id)
        elif conversation is not None:
            await self.conversations.conversation(project, conversation, param="conversation")
            context = await every(self.store, CONVERSATION_ITEM, conversation)
        messages: list[Message] = [{"role": "system", "content": body.instructions}] if body.instructions else []
        messages += it.as_messages(context + inputs)
        if not messages:
            raise BadRequest(
                "input gives the model nothing to answer: no message, function call or output", param="input"
            )
        request = _Request(project, body, inputs, conversation)
        resolved = self.chat.router.resolve(body.model, "text-generation", "v1/responses")
        passed = resolved.model.responses_api and self.chat.settings.responses_passthrough
        if body.background:
            return await self._queue(request, context + inputs, messages, caller, resolved.model if passed else None)
        if passed:
            return await self._passed(request, context + inputs, resolved.model, caller)
        result = await self.chat.create(self._generation(body, messages, caller))
        if isinstance(result, Streamed):
            prepared = result.prepared
            return StreamedResponse(self._events(request, prepared.id, prepared.created, result.items), result.headers)
        doc = self._document(request, result.prepared.id, result.prepared.created, result.outcome)
        return await self._keep(request, doc), result.headers

    # -- background ----------------------------------------------------------------------------

    async def _queue(
        self, request: _Request, items: list[Document], messages: list[Message], caller: Caller, passed: Model | None
    ) -> tuple[Document, dict[str, str]]:
        """A background response: stored queued with its input items (this process claims it, as
        runs are claimed: a process that dies leaves it to be failed by whichever reads it), then
        answered by a task; `cancel` stops it."""
        response_id, created = f"resp_{unique_hex()}", int(time.time())
        queued = {**self._document(request, response_id, created, None, status="queued"), "background": True}
        await self.liveness.claim(response_id)
        docs: list[New] = [(RESPONSE, queued, owner(request.project))]
        docs += [(INPUT_ITEM, item, response_id) for item in request.inputs]
        await self.store.create_many(docs)
        task = asyncio.create_task(self._answer_queued(request, queued, items, messages, caller, passed))
        self._tasks[response_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(response_id, None))
        return queued, {}

    async def _answer_queued(
        self,
        request: _Request,
        queued: Document,
        items: list[Document],
        messages: list[Message],
        caller: Caller,
        passed: Model | None,
    ) -> None:
        project, response_id = request.project, queued["id"]
        parent = owner(project)

        def unless_cancelled(change: Document) -> Callable[[Document], Document]:
            return lambda current: current if current["status"] in ("cancelled", "failed") else {**current, **change}

        try:
            await self.store.update(RESPONSE, response_id, unless_cancelled({"status": "in_progress"}), parent)
            whole = replace(request, body=request.body.model_copy(update={"stream": False, "background": False}))
            if passed is not None:
                outcome, reasoning, _ = await self._passed_outcome(whole, items, passed, caller)
            else:
                answer = await self.chat.create(self._generation(whole.body, messages, caller))
                assert not isinstance(answer, Streamed)
                outcome, reasoning = answer.outcome, []
            done = self._document(request, response_id, queued["created_at"], outcome, before=reasoning)
            stored = await self.store.update(
                RESPONSE, response_id, unless_cancelled({**done, "background": True}), parent
            )
            if stored is not None and stored["status"] not in ("cancelled", "failed"):
                await self._extend_conversation(request, done)
        except asyncio.CancelledError:
            if not self._closing:  # a cancel: said so (at shutdown the response is left to be failed)
                await self.store.update(RESPONSE, response_id, unless_cancelled({"status": "cancelled"}), parent)
            raise
        except Exception as exc:
            error = from_exception(exc)
            failed = {"status": "failed", "error": {"code": error.code or error.type, "message": error.message}}
            await self.store.update(RESPONSE, response_id, unless_cancelled(failed), parent)

    async def close(self) -> None:
        """At shutdown: background tasks stop; their responses are failed by whichever process reads them."""
        self._closing = True
        for task in list(self._tasks.values()):
            task.cancel()

    # -- GPT-OSS: the upstream's own Responses API -----------------------------------------------

    async def _passed_outcome(
        self, request: _Request, items: list[Document], model: Model, caller: Caller
    ) -> tuple[Outcome, list[Document], dict[str, str]]:
        """The answer of the upstream's `/ai/v1/responses` (budgets admitted and settled as the chat
        core does), its reasoning items, and the budgets' headers."""
        budgets = self.chat.budgets
        headers, model_spent = await budgets.admit(caller.key, model.name)
        if model_spent:
            raise QuotaExceeded(f"the daily neuron budget of `{model.name}` is spent; it resets at 00:00 UTC")
        sent = {"x-request-id": caller.request_id} if caller.request_id else None
        answered = await self.chat.upstream.responses(
            Call(model, passthrough.request(request.body, items), sent, request.body.model)
        )
        self.chat.metrics.method("responses", "passthrough")
        outcome, reasoning = passthrough.outcome(answered.result, answered.model)
        usage = outcome.usage
        await budgets.settle(caller.key, answered.model, usage["prompt_tokens"], usage["completion_tokens"])
        return outcome, reasoning, headers

    async def _passed(
        self, request: _Request, items: list[Document], model: Model, caller: Caller
    ) -> tuple[Document, dict[str, str]] | StreamedResponse:
        """A GPT-OSS model: the Responses request goes to the upstream's own `/ai/v1/responses`
        (non-streaming, the only way Workers AI serves it), with the context's items; the answer
        keeps its reasoning items. A streamed request gets the whole answer as the events of one
        text delta."""
        outcome, reasoning, headers = await self._passed_outcome(request, items, model, caller)
        id, created = f"resp_{unique_hex()}", int(time.time())
        if request.body.stream:
            return StreamedResponse(self._events(request, id, created, passthrough.replay(outcome)), headers)
        doc = self._document(request, id, created, outcome, before=reasoning)
        return await self._keep(request, doc), headers

    def _generation(self, body: ResponseCreate, messages: list[Message], caller: Caller) -> Generation:
        tools = [self._tool(raw, i) for i, raw in enumerate(body.tools)]
        choice: str | dict[str, Any] | None = None
        if isinstance(body.tool_choice, str):
            choice = body.tool_choice
        elif body.tool_choice is not None:
            choice = {"type": "function", "function": {"name": body.tool_choice.name}}
        fmt = body.text.format if body.text is not None else None
        response_format = None
        if fmt is not None and fmt.type == "json_schema":
            if not fmt.name:
                raise BadRequest("Missing required parameter: 'text.format.name'.", param="text.format.name")
            if fmt.schema_ is None:
                raise BadRequest("text.format.schema is required for json_schema", param="text.format.schema")
            response_format = json_format("json_schema", fmt.schema_)
        elif fmt is not None:
            response_format = json_format(fmt.type)
        return Generation(
            model=body.model,
            messages=messages,
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            tools=tools,
            tool_choice=choice,
            response_format=response_format,
            stream=bool(body.stream),
            include_usage=True,
            caller=caller,
            id_prefix="resp_",
        )

    @staticmethod
    def _tool(raw: dict[str, Any], index: int) -> dict[str, Any]:
        if raw.get("type") != "function":
            raise BadRequest(
                f"Tools of type {raw.get('type')!r} are not supported by this gateway (only function tools)",
                param=f"tools[{index}].type",
            )
        try:
            tool = ResponseFunctionTool.model_validate(raw)
        except ValueError as exc:
            raise BadRequest(f"Invalid value for 'tools[{index}]': {exc}", param=f"tools[{index}]") from None
        function = {"name": tool.name, "description": tool.description or "", "parameters": tool.parameters or {}}
        return {"type": "function", "function": function}

    async def _chain(self, project: str, response_id: str) -> list[Document]:
        """The items of the previous responses, oldest first: each one's input, then its output."""
        chain: list[Document] = []
        next_id: str | None = response_id
        while next_id is not None:
            if len(chain) >= MAX_CHAIN:
                raise BadRequest(
                    f"the chain of previous responses is longer than {MAX_CHAIN}", param="previous_response_id"
                )
            doc = await self.store.get(RESPONSE, next_id, owner(project))
            if doc is None:
                raise NotFound(f"Previous response with id '{next_id}' not found.", param="previous_response_id")
            chain.append(doc)
            next_id = doc.get("previous_response_id")
        out: list[Document] = []
        for doc in reversed(chain):
            out += await every(self.store, INPUT_ITEM, doc["id"])
            out += [item for item in doc.get("output") or [] if item.get("type") != "reasoning"]
        return out

    # -- the response object -----------------------------------------------------------------

    def _document(
        self,
        request: _Request,
        id: str,
        created: int,
        outcome: Outcome | None,
        *,
        status: str | None = None,
        output: list[Document] | None = None,
        error: dict[str, Any] | None = None,
        message_id: str | None = None,
        before: tuple[Document, ...] | list[Document] = (),
    ) -> Document:
        body = request.body
        incomplete = None
        if outcome is not None:
            status, incomplete = _ending(outcome)
            output = [*before, *it.output_items(outcome, message_id)]
        fmt = declared(body.text.format) if body.text is not None and body.text.format is not None else None
        return {
            "id": id,
            "object": "response",
            "created_at": created,
            "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": output or [],
            "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
            "previous_response_id": body.previous_response_id,
            "conversation": {"id": request.conversation} if request.conversation else None,
            "reasoning": {"effort": None, "summary": None},
            "store": body.store is not False,
            "temperature": body.temperature if body.temperature is not None else 1.0,
            "text": {"format": fmt or {"type": "text"}},
            "tool_choice": declared(body.tool_choice)
            if body.tool_choice is not None and not isinstance(body.tool_choice, str)
            else (body.tool_choice or "auto"),
            "tools": [{**t, "strict": t.get("strict", True)} for t in body.tools],
            "top_p": body.top_p if body.top_p is not None else 1.0,
            "truncation": body.truncation or "disabled",
            "usage": _usage(outcome) if outcome is not None else None,
            "user": body.user,
            "metadata": body.metadata or {},
            # fields OpenAI's response object carries that nothing here sets (Open Responses requires them)
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "top_logprobs": 0,
            "max_tool_calls": None,
            "service_tier": "default",
            "safety_identifier": None,
            "prompt_cache_key": None,
        }

    async def _keep(self, request: _Request, doc: Document) -> Document:
        """Store the response and its input items (unless `store: false`), and add input and output
        to its conversation: each all or nothing."""
        if request.body.store is not False:
            docs: list[New] = [(RESPONSE, doc, owner(request.project))]
            docs += [(INPUT_ITEM, item, doc["id"]) for item in request.inputs]
            await self.store.create_many(docs)
        await self._extend_conversation(request, doc)
        return doc

    async def _extend_conversation(self, request: _Request, doc: Document) -> None:
        """A response's input and output items join its conversation, all of them or none (the
        input items under new ids: they are stored under the response too)."""
        if request.conversation is None:
            return
        added = [{**item, "id": it.new_id(item["id"].split("_", 1)[0])} for item in request.inputs]
        added += doc["output"]
        await self.store.create_many([(CONVERSATION_ITEM, item, request.conversation) for item in added])

    # -- streamed ----------------------------------------------------------------------------

    async def _events(
        self, request: _Request, id: str, created: int, items: AsyncGenerator[str | None | Outcome]
    ) -> AsyncIterator[bytes]:
        """The SSE events of a streamed response, in OpenAI's order; one terminal `response.*` event
        ends it (no `[DONE]`); an error after the first byte is an `error` event, then
        `response.failed`."""
        numbers = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            return sse.encode_json({"type": kind, "sequence_number": next(numbers), **fields}, event=kind)

        message_id = it.new_id("msg")
        started = self._document(request, id, created, None, status="in_progress")
        yield event("response.created", response=started)
        yield event("response.in_progress", response=started)
        opened, outcome = False, None
        try:
            async for item in items:
                if item is None:
                    yield sse.comment()
                elif isinstance(item, str):
                    if not item:
                        continue
                    if not opened:
                        opened = True
                        for chunk in self._open_message(event, message_id):
                            yield chunk
                    yield event(
                        "response.output_text.delta",
                        item_id=message_id,
                        output_index=0,
                        content_index=0,
                        delta=item,
                        logprobs=[],
                    )
                else:
                    outcome = item
            if outcome is None:
                raise GatewayError("the model's answer ended without an outcome")
            doc = self._document(request, id, created, outcome, message_id=message_id)
            for index, output in enumerate(doc["output"]):
                if output["type"] == "message":
                    if not opened:
                        for chunk in self._open_message(event, message_id):
                            yield chunk
                    part = output["content"][0]
                    where = {"item_id": message_id, "output_index": index, "content_index": 0}
                    yield event("response.output_text.done", **where, text=part["text"], logprobs=[])
                    yield event("response.content_part.done", **where, part=part)
                else:
                    yield event(
                        "response.output_item.added",
                        output_index=index,
                        item={**output, "arguments": "", "status": "in_progress"},
                    )
                    where = {"item_id": output["id"], "output_index": index}
                    yield event("response.function_call_arguments.delta", **where, delta=output["arguments"])
                    yield event(
                        "response.function_call_arguments.done",
                        **where,
                        name=output["name"],
                        arguments=output["arguments"],
                    )
                yield event("response.output_item.done", output_index=index, item=output)
            await self._keep(request, doc)
        except (GatewayError, StoreUnavailable) as exc:
            error = from_exception(exc)
            self.chat.metrics.error(error.code or error.type)
            yield event("error", code=error.code or error.type, message=error.message, param=error.param)
            failed = self._document(
                request,
                id,
                created,
                None,
                status="failed",
                error={"code": error.code or error.type, "message": error.message},
            )
            yield event("response.failed", response=failed)
            return
        finally:
            await items.aclose()
        yield event(f"response.{doc['status']}", response=doc)

    @staticmethod
    def _open_message(event: Callable[..., bytes], message_id: str) -> list[bytes]:
        item = {"type": "message", "id": message_id, "status": "in_progress", "role": "assistant", "content": []}
        where = {"item_id": message_id, "output_index": 0, "content_index": 0}
        return [
            event("response.output_item.added", output_index=0, item=item),
            event("response.content_part.added", **where, part={"type": "output_text", "text": "", "annotations": []}),
        ]

    # -- stored responses --------------------------------------------------------------------

    async def response(self, project: str, response_id: str) -> Document:
        doc = await self.store.get(RESPONSE, response_id, owner(project))
        if doc is None:
            raise NotFound(f"Response with id '{response_id}' not found.")
        if doc["status"] in ("queued", "in_progress") and response_id not in self._tasks:
            if await self.liveness.orphaned(response_id):  # its process stopped: it will never end
                error = {"code": "server_error", "message": "The gateway process answering this response stopped."}
                failed = await self.store.update(
                    RESPONSE, response_id, lambda d: {**d, "status": "failed", "error": error}, owner(project)
                )
                return failed or doc
        return doc

    async def delete(self, project: str, response_id: str) -> Document:
        if not await self.store.delete(RESPONSE, response_id, owner(project)):
            raise NotFound(f"Response with id '{response_id}' not found.")
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def input_items(self, project: str, response_id: str, query: ListQuery) -> Page:
        await self.response(project, response_id)
        return await self.store.list(
            INPUT_ITEM, response_id, limit=query.limit, order=query.order, after=query.after, before=query.before
        )

    async def cancel(self, project: str, response_id: str) -> Document:
        """A background response still queued or in progress is cancelled (its task stopped, on
        this process; another's result is discarded); cancelling a cancelled one returns it."""
        doc = await self.response(project, response_id)
        if not doc.get("background"):
            raise BadRequest("Only responses created with background=true can be cancelled.", param="response_id")
        if doc["status"] == "cancelled":
            return doc
        if doc["status"] not in ("queued", "in_progress"):
            raise BadRequest(f"Cannot cancel a response with status '{doc['status']}'.", param="response_id")
        task = self._tasks.get(response_id)
        updated = await self.store.update(
            RESPONSE,
            response_id,
            lambda d: {**d, "status": "cancelled"} if d["status"] in ("queued", "in_progress") else d,
            owner(project),
        )
        if task is not None:
            task.cancel()
        return updated or doc


class ConversationsService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, project: str, body: ConversationCreate) -> Document:
        added = it.read_input(body.items or [], "items")
        conversation_id = it.new_id("conv")
        doc: Document = {
            "id": conversation_id,
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": body.metadata or {},
        }
        docs: list[New] = [(CONVERSATION, doc, owner(project))]
        docs += [(CONVERSATION_ITEM, item, conversation_id) for item in added]
        await self.store.create_many(docs)
        return doc

    async def conversation(self, project: str, conversation_id: str, param: str | None = None) -> Document:
        doc = await self.store.get(CONVERSATION, conversation_id, owner(project))
        if doc is None:
            raise NotFound(f"Conversation with id '{conversation_id}' not found.", param=param)
        return doc

    async def update(self, project: str, conversation_id: str, body: ConversationUpdate) -> Document:
        doc = await self.store.update(
            CONVERSATION, conversation_id, lambda d: {**d, "metadata": body.metadata}, owner(project)
        )
        if doc is None:
            raise NotFound(f"Conversation with id '{conversation_id}' not found.")
        return doc

    async def delete(self, project: str, conversation_id: str) -> Document:
        if not await self.store.delete(CONVERSATION, conversation_id, owner(project)):
            raise NotFound(f"Conversation with id '{conversation_id}' not found.")
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    async def items(self, project: str, conversation_id: str, query: ListQuery) -> Page:
        await self.conversation(project, conversation_id)
        return await self.store.list(
            CONVERSATION_ITEM,
            conversation_id,
            limit=query.limit,
            order=query.order,
            after=query.after,
            before=query.before,
        )

    async def add_items(self, project: str, conversation_id: str, body: ConversationItemsCreate) -> Document:
        await self.conversation(project, conversation_id)
        added = it.read_input(body.items, "items")
        await self.store.create_many([(CONVERSATION_ITEM, item, conversation_id) for item in added])
        return Page(added, False).body()

    async def item(self, project: str, conversation_id: str, item_id: str) -> Document:
        await self.conversation(project, conversation_id)
        doc = await self.store.get(CONVERSATION_ITEM, item_id, conversation_id)
        if doc is None:
            raise NotFound(f"Item with id '{item_id}' not found.")
        return doc

    async def delete_item(self, project: str, conversation_id: str, item_id: str) -> Document:
        conversation = await self.conversation(project, conversation_id)
        if not await self.store.delete(CONVERSATION_ITEM, item_id, conversation_id):
            raise NotFound(f"Item with id '{item_id}' not found.")
        return conversation
