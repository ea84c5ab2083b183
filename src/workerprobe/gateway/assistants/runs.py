"""Runs: the assistant's model, with its instructions and the run's extra instructions, over the
thread's messages; the reply is appended to the thread.

    queued -> in_progress -> completed | incomplete (cut at the token limit) | failed
                          -> requires_action -> (submit_tool_outputs) queued -> ...
                          -> cancelling -> cancelled          (POST .../cancel)
    queued | in_progress past `expires_at` -> expired                      (seen on reading)
    queued | in_progress whose gateway process died -> failed             (seen on reading)

A run whose gateway process no longer beats (liveness.py) failed with the gateway's restart,
whichever replica reads it.

A plain run executes in a background task (clients poll it); a streamed run executes while it
emits the Assistants event stream; what executing means is `execution.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from workerprobe.gateway.assistants import steps, tools
from workerprobe.gateway.assistants.execution import RunExecution
from workerprobe.gateway.assistants.liveness import Liveness
from workerprobe.gateway.assistants.protocol import (
    RunCreate,
    SubmitToolOutputs,
    ThreadAndRunCreate,
    ThreadCreate,
)
from workerprobe.gateway.assistants.rundoc import new_run, set_fields
from workerprobe.gateway.assistants.service import AssistantsService, ListQuery
from workerprobe.gateway.chat.service import ChatService
from workerprobe.gateway.errors import BadRequest, NotFound
from workerprobe.gateway.store import Page
from workerprobe.gateway.store.base import Document, New

__all__ = ["RunsService"]

log = logging.getLogger(__name__)

ACTIVE = ("queued", "in_progress", "cancelling")  # a process executes it
OPEN = (*ACTIVE, "requires_action")  # not ended: no other run may start on the thread
RUN_LIFETIME_S = 600
RESTARTED = "The gateway restarted while the run was executing; create a new run."


class RunsService:
    def __init__(
        self,
        assistants: AssistantsService,
        chat: ChatService,
        heartbeat_s: float = 5.0,
        execution: type[RunExecution] = RunExecution,
    ) -> None:
        self.assistants = assistants
        self.store = assistants.store
        self.execution = execution(assistants, chat)
        self.liveness = Liveness(self.store, heartbeat_s, RUN_LIFETIME_S * 2)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def open(self) -> None:
        await self.liveness.open()

    async def close(self) -> None:
        await self.liveness.close()

    async def _current(self, doc: Document) -> Document:
        """A stored run as it stands now: expired past `expires_at`, failed when its process died."""
        if doc["status"] not in OPEN or doc["id"] in self._tasks:
            return doc
        thread_id, run_id = doc["thread_id"], doc["id"]
        if time.time() > doc["expires_at"]:
            return await self._set(thread_id, run_id, status="expired", required_action=None) or doc
        if doc["status"] == "requires_action":  # waits for the client, not for a process
            return doc
        if run_id not in self._tasks and await self.liveness.orphaned(run_id):
            log.warning("run %s was left %s by a gateway process that is gone", run_id, doc["status"])
            failed = await self._set(
                thread_id,
                run_id,
                status="failed",
                failed_at=int(time.time()),
                last_error={"code": "server_error", "message": RESTARTED},
            )
            return failed or doc
        return doc

    # -- reading -----------------------------------------------------------------------------

    async def run(self, project: str, thread_id: str, run_id: str) -> Document:
        await self.assistants.thread(project, thread_id)
        doc = await self.store.get("run", run_id, parent=thread_id)
        if doc is None:
            raise NotFound(f"No run found with id '{run_id}' in thread '{thread_id}'.")
        return await self._current(doc)

    async def list_runs(self, project: str, thread_id: str, query: ListQuery) -> Page:
        await self.assistants.thread(project, thread_id)
        page = await self.store.list(
            "run", thread_id, limit=query.limit, order=query.order, after=query.after, before=query.before
        )
        return Page([await self._current(doc) for doc in page.data], page.has_more)

    async def list_steps(self, project: str, thread_id: str, run_id: str, query: ListQuery) -> Page:
        await self.run(project, thread_id, run_id)
        return await steps.list_steps(self.store, thread_id, run_id, query)

    async def step(self, project: str, thread_id: str, run_id: str, step_id: str) -> Document:
        await self.run(project, thread_id, run_id)
        return await steps.step(self.store, thread_id, run_id, step_id)

    async def modify_run(self, project: str, thread_id: str, run_id: str, metadata: dict[str, str] | None) -> Document:
        await self.assistants.thread(project, thread_id)
        doc = await self.store.update("run", run_id, lambda d: {**d, "metadata": metadata or {}}, parent=thread_id)
        if doc is None:
            raise NotFound(f"No run found with id '{run_id}' in thread '{thread_id}'.")
        return doc

    # -- creating ----------------------------------------------------------------------------

    async def create(self, project: str, thread_id: str, body: RunCreate) -> Document:
        """Validate, store the queued run with its additional messages (together or not at all);
        not yet executed."""
        await self.assistants.thread(project, thread_id)
        assistant = await self.assistants.assistant(project, body.assistant_id, param="assistant_id")
        active = await self.store.list("run", thread_id, limit=1)
        if active.data and (await self._current(active.data[0]))["status"] in OPEN:
            raise BadRequest(f"Thread {thread_id} already has an active run {active.data[0]['id']}.")
        self.assistants.models.resolve(body.model or assistant["model"], "text-generation")
        run = new_run(thread_id, assistant, body, RUN_LIFETIME_S)
        docs: list[New] = [
            ("message", self.assistants.new_message(thread_id, m), thread_id) for m in body.additional_messages or []
        ]
        await self._store(run, [*docs, ("run", run, thread_id)])
        return run

    async def create_thread_and_run(self, project: str, body: ThreadAndRunCreate) -> Document:
        """The thread, its messages and the run: stored together or not at all."""
        assistant = await self.assistants.assistant(project, body.assistant_id, param="assistant_id")
        thread, docs = self.assistants.new_thread(project, body.thread or ThreadCreate())
        self.assistants.models.resolve(body.model or assistant["model"], "text-generation")
        run = new_run(thread["id"], assistant, body, RUN_LIFETIME_S)
        await self._store(run, [*docs, ("run", run, thread["id"])])
        return run

    async def _store(self, run: Document, docs: list[New]) -> None:
        await self.liveness.claim(run["id"])  # before the run can be read
        await self.store.create_many(docs)

    def start(self, run: Document, key: str = "") -> None:
        """Execute a queued run in the background (`key`: the client's, for its budget)."""
        run_id = run["id"]
        task = asyncio.create_task(self.execution.plain(run, key))
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    async def submit_tool_outputs(self, project: str, thread_id: str, run_id: str, body: SubmitToolOutputs) -> Document:
        """The outputs of the calls a run waits for: the run is queued again (then executed)."""
        run = await self.run(project, thread_id, run_id)
        if run["status"] != "requires_action":
            raise BadRequest(f"Runs in status '{run['status']}' do not accept tool outputs.")
        await tools.record_outputs(self.store, run, body.tool_outputs)
        await steps.complete_tool_step(self.store, run, {o.tool_call_id: o.output for o in body.tool_outputs})
        await self.liveness.claim(run_id)
        queued = await self._set(thread_id, run_id, status="queued", required_action=None)
        if queued is None:
            raise NotFound(f"No run found with id '{run_id}' in thread '{thread_id}'.")
        return queued

    async def cancel(self, project: str, thread_id: str, run_id: str) -> Document:
        run = await self.run(project, thread_id, run_id)
        if run["status"] not in OPEN:
            raise BadRequest(f"Cannot cancel run with status '{run['status']}'.")
        doc = await self._set(thread_id, run_id, status="cancelling")
        task = self._tasks.get(run_id)
        if task is not None:
            task.cancel()
        else:  # not running in this process (or the process that ran it is gone)
            doc = await self._set(thread_id, run_id, status="cancelled", cancelled_at=int(time.time()))
        if doc is None:
            raise RuntimeError("unexpected state: doc is not None")
        return doc

    # -- executing ---------------------------------------------------------------------------

    async def _set(self, thread_id: str, run_id: str, **fields: Any) -> Document | None:
        return await set_fields(self.store, thread_id, run_id, **fields)

    async def stream(self, run: Document, key: str = "") -> AsyncIterator[bytes]:
        """Execute `run` while emitting the Assistants event stream."""
        run_id = run["id"]
        task = asyncio.current_task()
        if task is not None:
            self._tasks[run_id] = task
        try:
            async for chunk in self.execution.events(run, key):
                yield chunk
        except asyncio.CancelledError:
            await self._set(run["thread_id"], run_id, status="cancelled", cancelled_at=int(time.time()))
            raise
        finally:
            self._tasks.pop(run_id, None)
