"""Assistants, threads and messages: stored objects with OpenAI's shapes and semantics.

Every assistant and thread is stored under its project (`owner(project)` as its parent), so a key
reaches only its project's objects: another project's id reads as unknown (404, nothing leaks).
Messages and runs are reached through their thread, which is checked first."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from workerprobe.gateway.assistants.protocol import (
    AssistantCreate,
    AssistantModify,
    MessageCreate,
    MetadataModify,
    ThreadCreate,
)
from workerprobe.gateway.errors import BadRequest, NotFound
from workerprobe.gateway.models import ModelRouter
from workerprobe.gateway.protocol import declared
from workerprobe.gateway.store import Page, Store
from workerprobe.gateway.store.base import Document, New, every

__all__ = ["AssistantsService", "ListQuery", "new_id", "owner", "text_of"]


def owner(project: str) -> str:
    """The parent under which a project's assistants and threads are stored."""
    return f"project:{project}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def text_of(message: Document) -> str:
    return "".join(part["text"]["value"] for part in message.get("content", []) if part.get("type") == "text")


def _content(value: str | list[dict[str, Any]]) -> list[Document]:
    texts = [value] if isinstance(value, str) else [part["text"] for part in value]
    return [{"type": "text", "text": {"value": t, "annotations": []}} for t in texts]


class ListQuery:
    """`limit`, `order`, `after`, `before` from the query string, validated."""

    def __init__(self, params: Any) -> None:
        raw_limit = params.get("limit", "20")
        if not str(raw_limit).isdigit() or not 1 <= int(raw_limit) <= 100:
            raise BadRequest("limit must be an integer between 1 and 100", param="limit")
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadRequest("order must be 'asc' or 'desc'", param="order")
        self.limit = int(raw_limit)
        self.order: Literal["asc", "desc"] = order
        self.after: str | None = params.get("after")
        self.before: str | None = params.get("before")


class AssistantsService:
    def __init__(self, store: Store, models: ModelRouter) -> None:
        self.store = store
        self.models = models

    # -- assistants --------------------------------------------------------------------------

    async def create_assistant(self, project: str, body: AssistantCreate) -> Document:
        self.models.resolve(body.model, "text-generation")
        doc = {
            "id": new_id("asst"),
            "object": "assistant",
            "created_at": int(time.time()),
            "name": body.name,
            "description": body.description,
            "model": body.model,
            "instructions": body.instructions,
            "tools": [declared(tool) for tool in body.tools],
            "tool_resources": body.tool_resources or {},
            "metadata": body.metadata or {},
            "temperature": body.temperature,
            "top_p": body.top_p,
            "response_format": body.response_format or "auto",
        }
        return await self.store.create("assistant", doc, parent=owner(project))

    async def assistant(self, project: str, assistant_id: str, param: str | None = None) -> Document:
        doc = await self.store.get("assistant", assistant_id, parent=owner(project))
        if doc is None:
            raise NotFound(f"No assistant found with id '{assistant_id}'.", param=param)
        return doc

    async def modify_assistant(self, project: str, assistant_id: str, body: AssistantModify) -> Document:
        if body.model is not None:
            self.models.resolve(body.model, "text-generation")
        changes = declared(body)
        if "metadata" in changes:
            changes["metadata"] = changes["metadata"] or {}
        doc = await self.store.update("assistant", assistant_id, lambda d: {**d, **changes}, parent=owner(project))
        if doc is None:
            raise NotFound(f"No assistant found with id '{assistant_id}'.")
        return doc

    async def delete_assistant(self, project: str, assistant_id: str) -> Document:
        if not await self.store.delete("assistant", assistant_id, parent=owner(project)):
            raise NotFound(f"No assistant found with id '{assistant_id}'.")
        return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}

    async def list_assistants(self, project: str, query: ListQuery) -> Page:
        return await self.store.list(
            "assistant", owner(project), limit=query.limit, order=query.order, after=query.after, before=query.before
        )

    # -- threads -----------------------------------------------------------------------------

    async def create_thread(self, project: str, body: ThreadCreate) -> Document:
        """The thread and its messages, stored together or not at all."""
        thread, docs = self.new_thread(project, body)
        await self.store.create_many(docs)
        return thread

    def new_thread(self, project: str, body: ThreadCreate) -> tuple[Document, list[New]]:
        """A thread and its messages, to store (with `create_many`, beside anything else)."""
        thread_id = new_id("thread")
        doc = {
            "id": thread_id,
            "object": "thread",
            "created_at": int(time.time()),
            "metadata": body.metadata or {},
            "tool_resources": body.tool_resources or {},
        }
        docs: list[New] = [("thread", doc, owner(project))]
        docs += [("message", self.new_message(thread_id, m), thread_id) for m in body.messages]
        return doc, docs

    async def thread(self, project: str, thread_id: str) -> Document:
        doc = await self.store.get("thread", thread_id, parent=owner(project))
        if doc is None:
            raise NotFound(f"No thread found with id '{thread_id}'.")
        return doc

    async def modify_thread(self, project: str, thread_id: str, body: MetadataModify) -> Document:
        changes = declared(body)
        for field in ("metadata", "tool_resources"):
            if field in changes:
                changes[field] = changes[field] or {}
        doc = await self.store.update("thread", thread_id, lambda d: {**d, **changes}, parent=owner(project))
        if doc is None:
            raise NotFound(f"No thread found with id '{thread_id}'.")
        return doc

    async def delete_thread(self, project: str, thread_id: str) -> Document:
        if not await self.store.delete("thread", thread_id, parent=owner(project)):
            raise NotFound(f"No thread found with id '{thread_id}'.")
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    # -- messages ----------------------------------------------------------------------------

    def new_message(
        self,
        thread_id: str,
        body: MessageCreate,
        *,
        assistant_id: str | None = None,
        run_id: str | None = None,
    ) -> Document:
        now = int(time.time())
        return {
            "id": new_id("msg"),
            "object": "thread.message",
            "created_at": now,
            "thread_id": thread_id,
            "status": "completed",
            "incomplete_details": None,
            "completed_at": now,
            "incomplete_at": None,
            "role": body.role,
            "content": _content(body.content),
            "assistant_id": assistant_id,
            "run_id": run_id,
            "attachments": body.attachments or [],
            "metadata": body.metadata or {},
        }

    async def add_message(
        self,
        thread_id: str,
        body: MessageCreate,
        *,
        assistant_id: str | None = None,
        run_id: str | None = None,
    ) -> Document:
        """Append a message to a thread already checked to be the caller's."""
        doc = self.new_message(thread_id, body, assistant_id=assistant_id, run_id=run_id)
        return await self.store.create("message", doc, parent=thread_id)

    async def create_message(self, project: str, thread_id: str, body: MessageCreate) -> Document:
        await self.thread(project, thread_id)
        return await self.add_message(thread_id, body)

    async def message(self, project: str, thread_id: str, message_id: str) -> Document:
        await self.thread(project, thread_id)
        doc = await self.store.get("message", message_id, parent=thread_id)
        if doc is None:
            raise NotFound(f"No message found with id '{message_id}' in thread '{thread_id}'.")
        return doc

    async def modify_message(self, project: str, thread_id: str, message_id: str, body: MetadataModify) -> Document:
        await self.thread(project, thread_id)
        metadata = body.metadata
        doc = await self.store.update(
            "message", message_id, lambda d: {**d, "metadata": metadata or {}}, parent=thread_id
        )
        if doc is None:
            raise NotFound(f"No message found with id '{message_id}' in thread '{thread_id}'.")
        return doc

    async def delete_message(self, project: str, thread_id: str, message_id: str) -> Document:
        await self.thread(project, thread_id)
        if not await self.store.delete("message", message_id, parent=thread_id):
            raise NotFound(f"No message found with id '{message_id}' in thread '{thread_id}'.")
        return {"id": message_id, "object": "thread.message.deleted", "deleted": True}

    async def list_messages(self, project: str, thread_id: str, query: ListQuery, run_id: str | None = None) -> Page:
        await self.thread(project, thread_id)
        if run_id is None:
            return await self.store.list(
                "message", thread_id, limit=query.limit, order=query.order, after=query.after, before=query.before
            )
        every = await self.all_messages(thread_id, order=query.order)
        mine = [m for m in every if m.get("run_id") == run_id]
        return Page(mine[: query.limit], has_more=len(mine) > query.limit)

    async def all_messages(self, thread_id: str, order: Literal["asc", "desc"] = "asc") -> list[Document]:
        return await every(self.store, "message", thread_id, order)
