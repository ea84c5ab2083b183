"""Function tools in runs: the run's tools, `tool_choice` and `response_format` reach the model; a
tool call ends the run in `requires_action` with `required_action.submit_tool_outputs`; the
outputs a client submits continue it.

The calls and outputs of each round are kept beside the run (a `tool_exchange` document under the
thread, deleted with it), not in the thread: as in OpenAI's API, the thread holds the messages,
and every later model call of the run sees the calls and their outputs after them.
"""

from __future__ import annotations

from typing import Any

from workerprobe.gateway.assistants.protocol import ToolOutput
from workerprobe.gateway.chat.generation import Message
from workerprobe.gateway.chat.translate import response_format_body
from workerprobe.gateway.errors import BadRequest
from workerprobe.gateway.protocol import FunctionTool, NamedToolChoice, ResponseFormat, ToolCall, declared
from workerprobe.gateway.store import Store
from workerprobe.gateway.store.base import Document

__all__ = ["chat_options", "exchange_messages", "record_calls", "record_outputs", "required_action"]

EXCHANGE = "tool_exchange"


def chat_options(run: Document, answered: bool = False) -> dict[str, Any]:
    """The chat core's tools, tool choice and response format (`Generation` fields), from the run.
    A forced choice (`required`, a named function) holds for the run's first model call; once
    outputs were submitted (`answered`), the model may answer (`auto`), or the run would call tools
    forever."""
    options: dict[str, Any] = {}
    tools = [FunctionTool.model_validate(t) for t in run.get("tools") or [] if t.get("type") == "function"]
    choice = run.get("tool_choice") or "auto"
    if answered and choice != "none":
        choice = "auto"
    if isinstance(choice, dict) and choice.get("function", {}).get("name") not in {t.function.name for t in tools}:
        raise BadRequest(
            f"tool_choice names the function {choice.get('function', {}).get('name')!r}, which is not among "
            "the run's tools.",
            param="tool_choice",
        )
    if tools:
        options["tools"] = [declared(tool) for tool in tools]
        options["tool_choice"] = choice if isinstance(choice, str) else declared(NamedToolChoice.model_validate(choice))
    elif choice == "required" or isinstance(choice, dict):
        raise BadRequest("tool_choice needs the run (or its assistant) to have function tools.", param="tool_choice")
    response_format = run.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        options["response_format"] = response_format_body(ResponseFormat.model_validate(response_format))
    return options


def required_action(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}


async def rounds(store: Store, run: Document) -> list[dict[str, Any]]:
    doc = await store.get(EXCHANGE, run["id"], parent=run["thread_id"])
    return list(doc["rounds"]) if doc else []


async def exchange_messages(store: Store, run: Document) -> list[Message]:
    """The run's tool calls and their outputs so far, as the chat core's messages."""
    messages: list[Message] = []
    for round_ in await rounds(store, run):
        calls = [declared(ToolCall.model_validate(c)) for c in round_["calls"]]
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        for output in round_["outputs"]:
            messages.append({"role": "tool", "content": output["output"], "tool_call_id": output["tool_call_id"]})
    return messages


async def record_calls(store: Store, run: Document, calls: list[dict[str, Any]]) -> None:
    entry = {"calls": calls, "outputs": []}
    changed = await store.update(
        EXCHANGE, run["id"], lambda d: {**d, "rounds": [*d["rounds"], entry]}, parent=run["thread_id"]
    )
    if changed is None:
        await store.create(EXCHANGE, {"id": run["id"], "rounds": [entry]}, parent=run["thread_id"])


async def record_outputs(store: Store, run: Document, outputs: list[ToolOutput]) -> None:
    """The outputs of the pending calls: one for each call, no more, no other."""
    pending = (run.get("required_action") or {}).get("submit_tool_outputs", {}).get("tool_calls", [])
    wanted = {call["id"] for call in pending}
    given = [o.tool_call_id for o in outputs]
    if sorted(given) != sorted(wanted):
        missing, unknown = wanted - set(given), set(given) - wanted
        detail = "; ".join(
            part
            for part in (
                f"missing outputs for {sorted(missing)}" if missing else "",
                f"no pending call {sorted(unknown)}" if unknown else "",
                "each call takes one output" if len(given) != len(set(given)) else "",
            )
            if part
        )
        raise BadRequest(f"Invalid tool_outputs: {detail}.", param="tool_outputs")
    submitted = [{"tool_call_id": o.tool_call_id, "output": o.output} for o in outputs]

    def add(doc: Document) -> Document:
        *done, last = doc["rounds"]
        return {**doc, "rounds": [*done, {**last, "outputs": submitted}]}

    await store.update(EXCHANGE, run["id"], add, parent=run["thread_id"])
