"""Request bodies of the Responses and Conversations APIs, with OpenAI's field limits.

Input items are kept loose here (a list of objects) and read one by one by `items.py`, which
names the item and field that is wrong (`input[2].content[0].type`), as OpenAI's 400s do."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from workerprobe.gateway.protocol import OpenAIModel, TokenLimit, check_metadata

__all__ = [
    "ConversationCreate",
    "ConversationItemsCreate",
    "ConversationUpdate",
    "ResponseCreate",
    "ResponseFunctionTool",
    "TextConfig",
]

_Items = Annotated[list[dict[str, Any]], Field(max_length=2048)]


class ResponseFunctionTool(OpenAIModel):
    """A function tool as the Responses API takes it: flat, not under `function`."""

    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _NamedFunction(OpenAIModel):
    type: Literal["function"]
    name: str


class _Format(OpenAIModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str = Field(default="", pattern=r"^[a-zA-Z0-9_-]{1,64}$")  # explicit null: 400
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str = ""


class TextConfig(OpenAIModel):
    format: _Format | None = None
    verbosity: Literal["low", "medium", "high"] | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("null is not allowed")
        return value


class _ConversationRef(OpenAIModel):
    id: str = Field(min_length=1)


class ResponseCreate(OpenAIModel):
    NOT_NULL = frozenset({"model", "input", "tools", "tool_choice", "conversation", "user"})

    model: str = Field(min_length=1)
    input: Annotated[str, Field(max_length=10_485_760)] | _Items
    instructions: str | None = None
    max_output_tokens: TokenLimit | None = Field(default=None, ge=16)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    # Checked one by one (tools of other types are named in the 400)
    tools: Annotated[list[dict[str, Any]], Field(max_length=128)] = Field(default_factory=list)
    tool_choice: Literal["none", "auto", "required"] | _NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    store: bool | None = True
    previous_response_id: str | None = Field(default=None, min_length=1)
    conversation: Annotated[str, Field(min_length=1)] | _ConversationRef | None = None
    stream: bool | None = False
    background: bool | None = False
    metadata: dict[str, str] | None = None
    user: str | None = None
    truncation: Literal["auto", "disabled"] | None = None

    _metadata = field_validator("metadata")(check_metadata)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if not value:
            raise ValueError("input must be a non-empty string or a non-empty list of input items")
        return value


class ConversationCreate(OpenAIModel):
    items: Annotated[list[dict[str, Any]], Field(max_length=20)] | None = None
    metadata: dict[str, str] | None = None

    _metadata = field_validator("metadata")(check_metadata)


class ConversationUpdate(OpenAIModel):
    NOT_NULL = frozenset({"metadata"})

    metadata: dict[str, str]

    _metadata = field_validator("metadata")(check_metadata)


class ConversationItemsCreate(OpenAIModel):
    NOT_NULL = frozenset({"items"})

    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=20)]
