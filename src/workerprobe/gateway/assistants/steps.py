"""Run steps: what a run did, step by step. A `message_creation` step for each reply it wrote, a
`tool_calls` step for each round of tool calls (in progress until the outputs are submitted, then
completed with them). Stored under the thread (deleted with it), listed by run in creation order."""

from __future__ import annotations

import time
from typing import Any

from workerprobe.gateway.assistants.service import ListQuery, new_id
from workerprobe.gateway.errors import NotFound
from workerprobe.gateway.store import Page, Store
from workerprobe.gateway.store.base import Document, every

__all__ = [
    "complete_message_step",
    "complete_tool_step",
    "list_steps",
    "message_step",
    "step",
    "tool_calls_delta",
    "tool_calls_step",
    "without_calls",
]

KIND = "run_step"


def _new(run: Document, details: dict[str, Any], status: str, usage: dict[str, Any] | None = None) -> Document:
    now = int(time.time())
    return {
        "id": new_id("step"),
        "object": "thread.run.step",
        "created_at": now,
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "type": details["type"],
        "status": status,
        "step_details": details,
        "last_error": None,
        "expired_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": now if status == "completed" else None,
        "metadata": {},
        "usage": usage,
    }


async def message_step(
    store: Store, run: Document, message_id: str, usage: dict[str, Any] | None, status: str = "completed"
) -> Document:
    details = {"type": "message_creation", "message_creation": {"message_id": message_id}}
    return await store.create(KIND, _new(run, details, status, usage), parent=run["thread_id"])


async def complete_message_step(store: Store, run: Document, step_id: str, usage: dict[str, Any]) -> Document:
    changed = await store.update(
        KIND,
        step_id,
        lambda d: {**d, "status": "completed", "completed_at": int(time.time()), "usage": usage},
        parent=run["thread_id"],
    )
    if changed is None:
        raise NotFound(f"No step found with id '{step_id}' in run '{run['id']}'.")
    return changed


async def tool_calls_step(store: Store, run: Document, calls: list[dict[str, Any]]) -> Document:
    listed = [{**call, "function": {**call["function"], "output": None}} for call in calls]
    details = {"type": "tool_calls", "tool_calls": listed}
    return await store.create(KIND, _new(run, details, "in_progress"), parent=run["thread_id"])


def without_calls(made: Document) -> Document:
    return {**made, "step_details": {**made["step_details"], "tool_calls": []}}


def tool_calls_delta(made: Document) -> dict[str, Any]:
    """The `thread.run.step.delta` event of a tool-calls step: its calls, each with its index (the
    SDK's stream helper builds `on_tool_call_created` / `on_tool_call_delta` from these)."""
    calls = [{"index": i, **call} for i, call in enumerate(made["step_details"]["tool_calls"])]
    return {
        "id": made["id"],
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": calls}},
    }


async def complete_tool_step(store: Store, run: Document, outputs: dict[str, str]) -> None:
    """The run's waiting tool-calls step, completed with the submitted outputs."""
    waiting = [s for s in await _of_run(store, run["thread_id"], run["id"]) if s["status"] == "in_progress"]
    for found in waiting:

        def done(doc: Document) -> Document:
            calls = [
                {**c, "function": {**c["function"], "output": outputs.get(c["id"], c["function"]["output"])}}
                for c in doc["step_details"]["tool_calls"]
            ]
            details = {**doc["step_details"], "tool_calls": calls}
            return {**doc, "status": "completed", "completed_at": int(time.time()), "step_details": details}

        await store.update(KIND, found["id"], done, parent=run["thread_id"])


async def _of_run(store: Store, thread_id: str, run_id: str) -> list[Document]:
    return [s for s in await every(store, KIND, thread_id) if s["run_id"] == run_id]


async def list_steps(store: Store, thread_id: str, run_id: str, query: ListQuery) -> Page:
    steps = await _of_run(store, thread_id, run_id)
    if query.order == "desc":
        steps.reverse()
    ids = [s["id"] for s in steps]
    if query.after in ids:
        steps = steps[ids.index(query.after) + 1 :]
    elif query.before in ids:
        steps = steps[: ids.index(query.before)]
    return Page(steps[: query.limit], has_more=len(steps) > query.limit)


async def step(store: Store, thread_id: str, run_id: str, step_id: str) -> Document:
    doc = await store.get(KIND, step_id, parent=thread_id)
    if doc is None or doc["run_id"] != run_id:
        raise NotFound(f"No step found with id '{step_id}' in run '{run_id}'.")
    return doc
