"""Request bodies of the Assistants API, with OpenAI's field limits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workerprobe.gateway.protocol import (
    FunctionTool,
    Int,
    NamedToolChoice,
    OpenAIModel,
    ResponseFormat,
    check_metadata,
)

__all__ = [
    "AssistantCreate",
    "AssistantModify",
    "MessageCreate",
    "MetadataModify",
    "RunCreate",
    "SubmitToolOutputs",
    "ThreadAndRunCreate",
    "ThreadCreate",
    "TruncationStrategy",
]


class _WithMetadata(OpenAIModel):
    metadata: dict[str, str] | None = None

    _metadata = field_validator("metadata")(check_metadata)


class AssistantCreate(_WithMetadata):
    NOT_NULL = frozenset({"model", "tools"})

    model: str = Field(min_length=1)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[FunctionTool] = Field(default_factory=list, max_length=128)
    tool_resources: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: Literal["auto"] | dict[str, Any] | None = None


class AssistantModify(_WithMetadata):
    # Not nullable in OpenAI's API (an assistant always has a model and a list of tools): a null
    # would be stored and read back as null, where an SDK iterates `assistant.tools`.
    NOT_NULL = frozenset({"model", "tools"})

    model: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[FunctionTool] | None = Field(default=None, max_length=128)
    tool_resources: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: Literal["auto"] | dict[str, Any] | None = None


class MessageCreate(_WithMetadata):
    NOT_NULL = frozenset({"role", "content"})

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]
    attachments: list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            if len(value) > 256_000:
                raise ValueError("content is longer than 256000 characters")
            return value
        if not value:
            raise ValueError("content must not be empty")
        for part in value:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
        return value


class ThreadCreate(_WithMetadata):
    messages: list[MessageCreate] = Field(default_factory=list, max_length=32)
    tool_resources: dict[str, Any] | None = None


class MetadataModify(_WithMetadata):
    tool_resources: dict[str, Any] | None = None


class TruncationStrategy(OpenAIModel):
    """How much of the thread a run shows the model: `auto` drops messages from the middle to fit
    `max_prompt_tokens` (and the model's window); `last_messages` keeps the newest N."""

    NOT_NULL = frozenset({"type"})

    type: Literal["auto", "last_messages"]
    last_messages: Int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _count_for_last_messages(self) -> TruncationStrategy:
        if self.type == "last_messages" and self.last_messages is None:
            raise ValueError("truncation_strategy of type 'last_messages' needs last_messages")
        return self


class RunCreate(_WithMetadata):
    NOT_NULL = frozenset({"assistant_id"})

    assistant_id: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    instructions: str | None = Field(default=None, max_length=256_000)
    additional_instructions: str | None = Field(default=None, max_length=256_000)
    additional_messages: list[MessageCreate] | None = None
    tools: list[FunctionTool] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_prompt_tokens: Int | None = Field(default=None, ge=256)
    max_completion_tokens: Int | None = Field(default=None, ge=1)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: Literal["auto"] | ResponseFormat | None = None
    parallel_tool_calls: bool | None = None
    truncation_strategy: TruncationStrategy | None = None
    stream: bool | None = False


class ToolOutput(OpenAIModel):
    tool_call_id: str = Field(min_length=1)
    output: str = Field(default="", max_length=512_000)


class SubmitToolOutputs(OpenAIModel):
    NOT_NULL = frozenset({"tool_outputs"})

    tool_outputs: list[ToolOutput] = Field(min_length=1, max_length=128)
    stream: bool | None = False


class ThreadAndRunCreate(RunCreate):
    thread: ThreadCreate | None = None
