"""The one request the chat core answers, whatever wire it came on. A chat completion, a run and a
response each translate their own wire request into a `Generation` (messages, limits, tools,
response format, stream, caller, id prefix); no family builds another family's wire types to reach
the core (`ChatService.create`).

Messages, tools and the response format are already in the upstream's form (Workers AI takes
OpenAI-style messages and function tools); what Workers AI itself constrains (its seed range) is
applied here, once, for every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

__all__ = ["Caller", "Generation", "Message", "json_format"]

_SEED_MAX = 9_999_999_999


class Message(TypedDict):
    role: str  # system | user | assistant | tool
    content: str
    tool_calls: NotRequired[list[dict[str, Any]]]  # OpenAI's form: id, type, function {name, arguments}
    tool_call_id: NotRequired[str]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, and how: the key's identity (budgets, cache scope), the request id sent upstream,
    the client's Cache-Control, and the split header (part by part)."""

    key: str = ""
    request_id: str = ""
    cache_control: str | None = None
    split: str | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    model: str
    messages: list[Message]
    max_tokens: int | None = None  # the client's limit (None: the configured or the model's default)
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stops: tuple[str, ...] = ()
    tools: list[dict[str, Any]] = field(default_factory=list)  # function tools, OpenAI's form
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None  # json_format()
    stream: bool = False
    include_usage: bool = False  # a streamed answer ends with its usage
    caller: Caller = Caller()
    id_prefix: str = "chatcmpl-"  # of the answer's id

    def upstream_body(self, max_tokens: int | None) -> dict[str, Any]:
        """The Workers AI `/ai/run` body (without the model, which is in the URL)."""
        body: dict[str, Any] = {"messages": self.messages}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.seed is not None:  # outside Workers AI's 1-9,999,999,999: folded in, deterministically
            body["seed"] = self.seed if 1 <= self.seed <= _SEED_MAX else self.seed % _SEED_MAX + 1
        if self.tools and self.tool_choice != "none":
            body["tools"] = self.tools
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        if self.response_format is not None:
            body["response_format"] = self.response_format
        return body


def json_format(kind: str, schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A response format as Workers AI takes it: `json_object`, or `json_schema` with the bare JSON
    Schema (not OpenAI's wrapper); None for plain text."""
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": schema if schema is not None else {"type": "object"}}
    return None
