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
emits the Assistants event stream (`thread.run.created` ... `thread.run.completed`, `done`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from workerprobe import sse
from workerprobe.gateway.assistants import context, steps, tools
from workerprobe.gateway.assistants.liveness import Liveness
from workerprobe.gateway.assistants.protocol import (
    MessageCreate,
    RunCreate,
    SubmitToolOutputs,
    ThreadAndRunCreate,
    ThreadCreate,
)
from workerprobe.gateway.assistants.rundoc import new_run
from workerprobe.gateway.assistants.service import AssistantsService, ListQuery, text_of
from workerprobe.gateway.chat.generation import Caller, Generation, Message
from workerprobe.gateway.chat.service import Answer, ChatService, Outcome, Streamed
from workerprobe.gateway.errors import BadRequest, GatewayError, NotFound
from workerprobe.gateway.store import Page
from workerprobe.gateway.store.base import Document, New

__all__ = ["RunsService"]

log = logging.getLogger(__name__)

ACTIVE = ("queued", "in_progress", "cancelling")  # a process executes it
OPEN = (*ACTIVE, "requires_action")  # not ended: no other run may start on the thread
RUN_LIFETIME_S = 600
RESTARTED = "The gateway restarted while the run was executing; create a new run."


class RunsService:
    def __init__(self, assistants: AssistantsService, chat: ChatService, heartbeat_s: float = 5.0) -> None:
        self.assistants = assistants
        self.store = assistants.store
        self.chat = chat
        self.liveness = Liveness(self.store, heartbeat_s, RUN_LIFETIME_S * 2)
        self._count = context.prompt_counter(chat.template)
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
        task = asyncio.create_task(self._execute(run, key))
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
        return await self.store.update("run", run_id, lambda d: {**d, **fields}, parent=thread_id)

    def instructions(self, run: Document) -> str:
        """What the model is told before the thread (the run's, else the assistant's instructions)."""
        return str(run["instructions"] or "")

    async def _request(self, run: Document, key: str, stream: bool = False) -> Generation:
        """The run's next model call: its instructions, the thread within its truncation strategy
        and limits, its tool calls and outputs so far (context.Incomplete when nothing fits)."""
        left = context.limits(run)
        instructions = self.instructions(run)
        head: list[Message] = [{"role": "system", "content": instructions}] if instructions else []
        thread: list[Message] = [
            {"role": message["role"], "content": text_of(message)}
            for message in await self.assistants.all_messages(run["thread_id"])
        ]
        if not thread:
            raise BadRequest("The thread has no messages to run on.")
        exchanged = await tools.exchange_messages(self.store, run)
        window = self.assistants.models.resolve(run["model"], "text-generation").model.context_window
        messages = self.fit(run, head, thread, exchanged, left, window)
        return Generation(
            model=run["model"],
            messages=messages,
            max_tokens=left.completion,
            temperature=run["temperature"],
            top_p=run["top_p"],
            stream=stream,
            caller=Caller(key),
            **self.tool_options(run, answered=bool(exchanged)),
        )

    def fit(
        self,
        run: Document,
        head: list[Message],
        thread: list[Message],
        tail: list[Message],
        left: context.Limits,
        window: int | None,
    ) -> list[Message]:
        """The model call's messages within the run's truncation strategy and prompt limit."""
        return context.fit(head, thread, tail, run.get("truncation_strategy"), left, window, self._count)

    def tool_options(self, run: Document, answered: bool = False) -> dict[str, Any]:
        """The chat core's tools, tool choice and response format (from the run)."""
        return tools.chat_options(run, answered)

    async def _reply_with_step(self, run: Document) -> tuple[Document, Document]:
        """The reply message (in progress, empty) and its message_creation step."""
        reply = await self._reply(run)
        reply = {**reply, "status": "in_progress", "content": [], "completed_at": None}
        step = await steps.message_step(self.store, run, reply["id"], None, status="in_progress")
        return reply, step

    async def _steps_now(self, run: Document) -> list[Document]:
        """The run's newest step (the one this part of the stream made)."""
        page = await steps.list_steps(
            self.store, run["thread_id"], run["id"], ListQuery({"order": "desc", "limit": "1"})
        )
        return page.data

    async def _require(self, run: Document, outcome: Outcome) -> Document:
        """The model called tools: the run waits for their outputs (one call at a time when the run
        says `parallel_tool_calls: false`)."""
        calls = outcome.tool_calls
        if run.get("parallel_tool_calls") is False:
            calls = calls[:1]
        await tools.record_calls(self.store, run, calls)
        await steps.tool_calls_step(self.store, run, calls)
        waiting = await self._set(
            run["thread_id"],
            run["id"],
            status="requires_action",
            required_action=tools.required_action(calls),
            usage=context.add_usage(run.get("usage"), outcome.usage),
        )
        return waiting or run

    async def _finish(
        self, run: Document, outcome: Outcome, message_id: str, step_id: str | None = None
    ) -> tuple[Document, Document]:
        """Store the reply's final state, its step's and the run's; returns (message, run)."""
        now = int(time.time())
        cut = outcome.finish == "length"
        reply = await self.store.update(
            "message",
            message_id,
            lambda d: {
                **d,
                "content": [{"type": "text", "text": {"value": outcome.text, "annotations": []}}],
                "status": "incomplete" if cut else "completed",
                "incomplete_details": {"reason": "max_tokens"} if cut else None,
                "completed_at": None if cut else now,
                "incomplete_at": now if cut else None,
            },
            parent=run["thread_id"],
        )
        usage = {k: outcome.usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        fields: dict[str, Any] = {"usage": context.add_usage(run.get("usage"), usage)}
        if cut:
            fields |= {"status": "incomplete", "incomplete_details": {"reason": "max_completion_tokens"}}
        else:
            fields |= {"status": "completed", "completed_at": now}
        done = await self._set(run["thread_id"], run["id"], **fields)
        if reply is None or done is None:
            raise RuntimeError("unexpected state: reply is not None and done is not None")
        if step_id is None:
            await steps.message_step(self.store, run, message_id, usage)
        else:
            await steps.complete_message_step(self.store, run, step_id, usage)
        return reply, done

    async def _reply(self, run: Document) -> Document:
        """The assistant's (still empty) reply message, appended to the thread."""
        return await self.assistants.add_message(
            run["thread_id"],
            MessageCreate(role="assistant", content=""),
            assistant_id=run["assistant_id"],
            run_id=run["id"],
        )

    async def _incomplete(self, run: Document, reason: str) -> Document:
        """The run's limits leave no room for its next model call: it ends `incomplete`."""
        done = await self._set(run["thread_id"], run["id"], status="incomplete", incomplete_details={"reason": reason})
        return done or run

    async def _fail(self, run: Document, error: GatewayError) -> Document | None:
        # a request the run's own settings make impossible (a tool choice its tools cannot meet)
        # is the run's prompt being invalid, not the server failing
        code = {429: "rate_limit_exceeded", 400: "invalid_prompt"}.get(error.status, "server_error")
        return await self._set(
            run["thread_id"],
            run["id"],
            status="failed",
            failed_at=int(time.time()),
            last_error={"code": code, "message": error.message},
        )

    async def _execute(self, run: Document, key: str) -> None:
        thread_id, run_id = run["thread_id"], run["id"]
        try:
            run = await self._set(thread_id, run_id, status="in_progress", started_at=int(time.time())) or run
            answer = await self.chat.create(await self._request(run, key))
            if not isinstance(answer, Answer):
                raise TypeError("a run's plain completion came back streamed")
            if answer.outcome.tool_calls:
                await self._require(run, answer.outcome)
                return
            reply = await self._reply(run)
            await self._finish(run, answer.outcome, reply["id"])
        except context.Incomplete as cut:
            await self._incomplete(run, cut.reason)
        except GatewayError as error:
            await self._fail(run, error)
        except asyncio.CancelledError:
            await self._set(thread_id, run_id, status="cancelled", cancelled_at=int(time.time()))
        except Exception:  # anything else: the run fails with a reason, never stays in_progress
            log.exception("run %s failed", run_id)
            await self._fail(run, GatewayError("The run failed on an error of the gateway's."))

    async def stream(self, run: Document, key: str = "") -> AsyncIterator[bytes]:
        """Execute `run` while emitting the Assistants event stream."""
        run_id = run["id"]
        task = asyncio.current_task()
        if task is not None:
            self._tasks[run_id] = task
        try:
            async for chunk in self._stream(run, key):
                yield chunk
        except asyncio.CancelledError:
            await self._set(run["thread_id"], run_id, status="cancelled", cancelled_at=int(time.time()))
            raise
        finally:
            self._tasks.pop(run_id, None)

    async def _stream(self, run: Document, key: str) -> AsyncIterator[bytes]:
        event: Callable[[str, Any], bytes] = lambda name, data: sse.encode_json(data, event=name)  # noqa: E731
        thread_id, run_id = run["thread_id"], run["id"]
        if run["status"] == "queued" and run["started_at"] is None:
            yield event("thread.run.created", run)
        else:  # continued after its tool outputs: the tool-calls step they completed
            for done in await self._steps_now(run):
                if done["type"] == "tool_calls" and done["status"] == "completed":
                    yield event("thread.run.step.completed", done)
        yield event("thread.run.queued", run)
        run = await self._set(thread_id, run_id, status="in_progress", started_at=int(time.time())) or run
        yield event("thread.run.in_progress", run)
        try:
            streamed = await self.chat.create(await self._request(run, key, stream=True))
            if not isinstance(streamed, Streamed):
                raise TypeError("a run's streamed completion came back whole")
            reply: Document | None = None  # made with the first text: a round of tool calls has none
            step: Document | None = None
            outcome: Outcome | None = None
            async for item in streamed.items:
                if item is None:
                    yield sse.comment()
                elif isinstance(item, str):
                    if reply is None:
                        reply, step = await self._reply_with_step(run)
                        yield event("thread.run.step.created", step)
                        yield event("thread.message.created", reply)
                        yield event("thread.message.in_progress", reply)
                    delta = {"content": [{"index": 0, "type": "text", "text": {"value": item, "annotations": []}}]}
                    yield event(
                        "thread.message.delta", {"id": reply["id"], "object": "thread.message.delta", "delta": delta}
                    )
                else:
                    outcome = item
            if outcome is None:
                raise GatewayError("The model's answer ended without its outcome.")
            if outcome.tool_calls and reply is None:
                run = await self._require(run, outcome)
                for made in await self._steps_now(run):
                    # created empty, then the calls as a delta, as OpenAI streams them (the SDK's
                    # stream helper adds each delta to what it was given)
                    yield event("thread.run.step.created", steps.without_calls(made))
                    yield event("thread.run.step.delta", steps.tool_calls_delta(made))
                yield event("thread.run.requires_action", run)
            else:
                if reply is None or step is None:
                    reply, step = await self._reply_with_step(run)
                    yield event("thread.run.step.created", step)
                    yield event("thread.message.created", reply)
                message, run = await self._finish(run, outcome, reply["id"], step["id"])
                yield event(f"thread.message.{message['status']}", message)
                for made in await self._steps_now(run):
                    yield event("thread.run.step.completed", made)
                yield event(f"thread.run.{run['status']}", run)
        except context.Incomplete as cut:
            yield event("thread.run.incomplete", await self._incomplete(run, cut.reason))
        except GatewayError as error:
            failed = await self._fail(run, error)
            yield event("thread.run.failed", failed or run)
        yield sse.encode("[DONE]", event="done")
