"""The document of a run: what it was asked, with the assistant's settings where it set none."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from workerprobe.gateway.assistants.protocol import RunCreate
from workerprobe.gateway.assistants.service import new_id
from workerprobe.gateway.protocol import declared
from workerprobe.gateway.store import Store
from workerprobe.gateway.store.base import Document

__all__ = ["new_run", "set_fields"]


def new_run(thread_id: str, assistant: Document, body: RunCreate, lifetime_s: int) -> Document:
    """A queued run's document: the run's settings, else its assistant's (the model is checked by
    the caller)."""
    model = body.model or assistant["model"]
    now = int(time.time())
    instructions = body.instructions if body.instructions is not None else assistant.get("instructions")
    if body.additional_instructions:
        instructions = (
            f"{instructions}\n\n{body.additional_instructions}" if instructions else body.additional_instructions
        )
    return {
        "id": new_id("run"),
        "object": "thread.run",
        "created_at": now,
        "thread_id": thread_id,
        "assistant_id": assistant["id"],
        "status": "queued",
        "required_action": None,
        "last_error": None,
        "expires_at": now + lifetime_s,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "model": model,
        "instructions": instructions or "",
        "tools": ([declared(tool) for tool in body.tools] if body.tools is not None else assistant.get("tools", [])),
        "metadata": body.metadata or {},
        "usage": None,
        "temperature": body.temperature if body.temperature is not None else assistant.get("temperature"),
        "top_p": body.top_p if body.top_p is not None else assistant.get("top_p"),
        "max_prompt_tokens": body.max_prompt_tokens,
        "max_completion_tokens": body.max_completion_tokens,
        "truncation_strategy": (
            {"type": "auto", "last_messages": None} | declared(body.truncation_strategy)
            if body.truncation_strategy is not None
            else {"type": "auto", "last_messages": None}
        ),
        "response_format": (
            declared(body.response_format)
            if isinstance(body.response_format, BaseModel)
            else body.response_format or assistant.get("response_format") or "auto"
        ),
        "tool_choice": (
            declared(body.tool_choice) if isinstance(body.tool_choice, BaseModel) else body.tool_choice or "auto"
        ),
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
    }


async def set_fields(store: Store, thread_id: str, run_id: str, **fields: Any) -> Document | None:
    """The run with these fields changed (None: it is gone)."""
    return await store.update("run", run_id, lambda d: {**d, **fields}, parent=thread_id)
