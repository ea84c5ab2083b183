"""Chat Completions wire types (OpenAI reference behaviour)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from workerprobe.gateway.protocol import (
    FunctionTool,
    Int,
    NamedToolChoice,
    OpenAIModel,
    ResponseFormat,
    TokenLimit,
    ToolCall,
)

__all__ = ["ChatCompletionRequest", "ChatMessage", "StreamOptions"]


class ChatMessage(OpenAIModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # Parts are checked by the service, which names what is unsupported (an image, say).
    content: str | Annotated[list[dict[str, Any]], Field(min_length=1)] | None = None
    # Not nullable in OpenAI's API: an explicit null is refused, leaving a field out is fine.
    name: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str = ""

    @model_validator(mode="after")
    def _content_by_role(self) -> ChatMessage:
        # As OpenAI's API: system, developer, user and tool messages carry content; an assistant's,
        # content or tool calls; a tool's names the call it answers.
        if self.content is None and self.role in ("system", "developer", "user", "tool"):
            raise ValueError(f"a {self.role} message needs content (a string or a list of parts), not null")
        if self.content is None and self.role == "assistant" and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id, the id of the call it answers")
        return self


class StreamOptions(OpenAIModel):
    include_usage: bool = False


_Stop = Annotated[str, Field(min_length=1)]


class ChatCompletionRequest(OpenAIModel):
    NOT_NULL = frozenset({"model", "messages", "user", "tools", "tool_choice", "response_format"})

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: TokenLimit | None = Field(default=None, ge=1)
    max_completion_tokens: TokenLimit | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: Int | None = Field(default=None, ge=1, le=128)
    seed: Int | None = None
    stop: _Stop | Annotated[list[_Stop], Field(min_length=1, max_length=4)] | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
