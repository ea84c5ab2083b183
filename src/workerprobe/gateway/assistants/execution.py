"""Executing a run: what its model call sees (its instructions, the thread within its limits, its
tools), and how the outcome is stored (the reply, its step, the run's status and usage), for a run
clients poll and for one that streams the Assistants events (`thread.run.created` ...
`thread.run.completed`, `done`). A subclass is the seam the selftest's defective runs use
(`Parts.execution`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from workerprobe import sse
from workerprobe.gateway.assistants import context, steps, tools
from workerprobe.gateway.assistants.protocol import MessageCreate
from workerprobe.gateway.assistants.rundoc import set_fields
from workerprobe.gateway.assistants.service import AssistantsService, ListQuery, text_of
from workerprobe.gateway.chat.generation import Caller, Generation, Message
from workerprobe.gateway.chat.service import Answer, ChatService, Outcome, Streamed
from workerprobe.gateway.errors import BadRequest, GatewayError
from workerprobe.gateway.store.base import Document

__all__ = ["RunExecution"]

log = logging.getLogger(__name__)


class RunExecution:
    def __init__(self, assistants: AssistantsService, chat: ChatService) -> None:
        self.assistants = assistants
        self.store = assistants.store
        self.chat = chat
        self._count = context.prompt_counter(chat.template)

    async def _set(self, thread_id: str, run_id: str, **fields: Any) -> Document | None:
        return await set_fields(self.store, thread_id, run_id, **fields)

    def instructions(self, run: Document) -> str:
        """What the model is told before the thread (the run's, else the assistant's instructions)."""
        return str(run["instructions"] or "")

    async def request(self, run: Document, key: str, stream: bool = False) -> Generation:
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

    async def plain(self, run: Document, key: str) -> None:
        """Execute a run whose client polls it (a background task's)."""
        thread_id, run_id = run["thread_id"], run["id"]
        try:
            run = await self._set(thread_id, run_id, status="in_progress", started_at=int(time.time())) or run
            answer = await self.chat.create(await self.request(run, key))
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

    async def events(self, run: Document, key: str) -> AsyncIterator[bytes]:
        """Execute a run while emitting the Assistants event stream."""
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
            streamed = await self.chat.create(await self.request(run, key, stream=True))
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
