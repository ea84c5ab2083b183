"""Items, the unit of the Responses and Conversations APIs, as pure functions: a request's input
read into stored items (each given an id, every wrong one a 400 naming it), items as the chat
core's messages, and an answer's outcome as output items.

Item types the gateway reads: `message` (roles user, assistant, system, developer; text parts
`input_text` / `output_text`), `function_call` and `function_call_output`. A `reasoning` item (GPT-OSS
returns them) is kept but not sent to the model again. Images, files, item references and built-in
tools are refused by name rather than dropped: a client that sent one would silently get an answer
to something else.
"""

from __future__ import annotations

from typing import Any

import orjson

from workerprobe.gateway.chat.generation import Message
from workerprobe.gateway.chat.plan import Outcome
from workerprobe.gateway.errors import BadRequest
from workerprobe.ids import unique_hex

__all__ = ["as_messages", "output_items", "read_input", "text_of"]

_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text")


def new_id(prefix: str) -> str:
    return f"{prefix}_{unique_hex()}"


def read_input(value: str | list[dict[str, Any]], param: str = "input") -> list[dict[str, Any]]:
    """A request's `input` (or a conversation's `items`) as items to store, each with an id."""
    if isinstance(value, str):
        return [_message("user", [{"type": "input_text", "text": value}])]
    return [_item(raw, f"{param}[{i}]") for i, raw in enumerate(value)]


def _message(role: str, content: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": new_id("msg"), "status": status, "role": role, "content": content}


def _item(raw: dict[str, Any], where: str) -> dict[str, Any]:
    # An id a client sends back is not kept: each stored item gets its own (a history sent again,
    # as clients without previous_response_id do, would otherwise store one id twice).
    kind = raw.get("type", "message" if "role" in raw else None)
    if kind == "message":
        role = raw.get("role")
        if role not in _ROLES:
            raise BadRequest(
                f"Invalid value for '{where}.role': {role!r}; expected one of {', '.join(_ROLES)}.",
                param=f"{where}.role",
            )
        return {**_message(str(role), _content(raw.get("content"), str(role), where))}
    if kind == "function_call":
        call_id, name, arguments = (raw.get(k) for k in ("call_id", "name", "arguments"))
        for field, value in (("call_id", call_id), ("name", name), ("arguments", arguments)):
            if not isinstance(value, str) or (field != "arguments" and not value):
                raise BadRequest(f"Missing or invalid '{where}.{field}': a string.", param=f"{where}.{field}")
        item = {"type": "function_call", "id": new_id("fc"), "call_id": call_id, "name": name, "arguments": arguments}
        return {**item, "status": "completed"}
    if kind == "function_call_output":
        call_id, output = raw.get("call_id"), raw.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"Missing or invalid '{where}.call_id': a string.", param=f"{where}.call_id")
        if not isinstance(output, str):
            raise BadRequest(f"Missing or invalid '{where}.output': a string.", param=f"{where}.output")
        item = {"type": "function_call_output", "id": new_id("fco"), "call_id": call_id, "output": output}
        return {**item, "status": "completed"}
    if kind == "reasoning":
        summary = raw.get("summary", [])
        if not isinstance(summary, list):
            raise BadRequest(f"Invalid value for '{where}.summary': an array.", param=f"{where}.summary")
        return {"type": "reasoning", "id": new_id("rs"), "summary": summary}
    if kind is None:
        raise BadRequest(f"Missing required parameter: '{where}.type'.", param=f"{where}.type")
    raise BadRequest(
        f"Input items of type {kind!r} are not supported by this gateway (message, function_call, "
        "function_call_output and reasoning are).",
        param=f"{where}.type",
    )


def _content(value: Any, role: str, where: str) -> list[dict[str, Any]]:
    kind = "output_text" if role == "assistant" else "input_text"
    if isinstance(value, str):
        return [_part(kind, value)]
    if not isinstance(value, list):
        raise BadRequest(f"Invalid value for '{where}.content': a string or a list of parts.", param=f"{where}.content")
    if not value:
        raise BadRequest(f"Invalid value for '{where}.content': an empty list of parts.", param=f"{where}.content")
    return [_part(kind, _text_part(part, f"{where}.content[{j}]")) for j, part in enumerate(value)]


def _part(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text, "annotations": []} if kind == "output_text" else {"type": kind, "text": text}


def _text_part(part: Any, where: str) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return str(part["text"])
    raise BadRequest(
        f"Content parts of type {kind!r} are not supported by this gateway (only input_text and output_text).",
        param=f"{where}.type",
    )


def text_of(item: dict[str, Any]) -> str:
    """The text of a message item (its parts joined)."""
    return "\n".join(str(p.get("text") or "") for p in item.get("content") or [] if isinstance(p, dict))


def as_messages(items: list[dict[str, Any]]) -> list[Message]:
    """Stored items as the chat core's messages: consecutive function calls become one assistant
    message with tool calls, each output a tool message."""
    out: list[Message] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            out.append({"role": role, "content": text_of(item)})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "content": item["output"], "tool_call_id": item["call_id"]})
    return out


def output_items(outcome: Outcome, message_id: str | None = None) -> list[dict[str, Any]]:
    """What the model produced, as output items: its text as a message (when it wrote any, or
    called nothing), each tool call as a function_call."""
    items: list[dict[str, Any]] = []
    if outcome.text or not outcome.tool_calls:
        status = "incomplete" if outcome.finish == "length" else "completed"
        item = _message("assistant", [_part("output_text", outcome.text)], status)
        items.append({**item, "id": message_id or item["id"]})
    for call in outcome.tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name", ""),
                "arguments": arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode(),
                "status": "completed",
            }
        )
    return items
