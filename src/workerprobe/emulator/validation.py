"""Request validation against a model's documented input schema, with Workers AI's messages.

Violations raise `BadInput` (400 / 5006) whose detail reads like the live API's schema errors,
e.g. `Type mismatch of '/messages/0/content', 'array' not in 'string'`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workerprobe import tokens
from workerprobe.catalogue import Catalogue, Model, ParameterRange
from workerprobe.emulator.errors import BadInput
from workerprobe.emulator.generation import Prompt

__all__ = ["EmbeddingInput", "embedding_input", "json_type", "text_generation_input"]

_ROLES_WITH_NULL_CONTENT = {"assistant"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _mismatch(path: str, value: Any, expected: str) -> BadInput:
    return BadInput(f"Type mismatch of '{path}', '{json_type(value)}' not in '{expected}'")


def _check_range(name: str, value: Any, spec: ParameterRange) -> None:
    kind = json_type(value)
    allowed = {"integer": {"integer"}, "number": {"integer", "number"}}.get(spec.type, {spec.type})
    if kind not in allowed:
        raise _mismatch(f"/{name}", value, spec.type)
    if spec.min is not None and value < spec.min:
        raise BadInput(f"Value at '/{name}' is {value}, less than minimum {spec.min:g}")
    if spec.max is not None and value > spec.max:
        raise BadInput(f"Value at '/{name}' is {value}, greater than maximum {spec.max:g}")


def _content_text(path: str, content: Any, model: Model) -> str:
    """Message content as text: a string, or (OpenAI-input models) a list of text parts."""
    if isinstance(content, str):
        return content
    if model.input == "openai" and isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise _mismatch(f"{path}/{i}", part, "object")
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise _mismatch(f"{path}/{i}/text", part.get("text"), "string")
                texts.append(part["text"])
        return "\n".join(texts)
    raise _mismatch(path, content, "string")


def _messages(body: dict[str, Any], model: Model, max_chars: int) -> tuple[list[tuple[str, str]], bool]:
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _mismatch("/messages", messages, "array")
    if not messages:
        raise BadInput("Array at '/messages' has 0 items, fewer than minItems 1")
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        path = f"/messages/{i}"
        if not isinstance(message, dict):
            raise _mismatch(path, message, "object")
        if "role" not in message:
            raise BadInput(f"required properties at '{path}' are 'role'")
        role = message["role"]
        if not isinstance(role, str):
            raise _mismatch(f"{path}/role", role, "string")
        content = message.get("content")
        if content is None and role in _ROLES_WITH_NULL_CONTENT and message.get("tool_calls"):
            turns.append((role, ""))
            continue
        if "content" not in message:
            raise BadInput(f"required properties at '{path}' are 'content'")
        text = _content_text(f"{path}/content", content, model)
        if len(text) > max_chars:
            raise BadInput(f"String at '{path}/content' is longer than maxLength {max_chars}")
        turns.append((role, text))
    return turns, turns[-1][0] == "tool"


def text_generation_input(body: Any, model: Model, catalogue: Catalogue) -> tuple[Prompt, int, bool]:
    """Validate a text-generation body; returns the prompt, its token count and `stream`."""
    if not isinstance(body, dict):
        raise _mismatch("/", body, "object")
    has_prompt, has_messages = "prompt" in body, "messages" in body
    if has_prompt == has_messages:
        if has_prompt:
            raise BadInput("oneOf at '/' not met, 2 matches")
        raise BadInput(
            "oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', "
            "required properties at '/' are 'messages'"
        )
    for name, spec in catalogue.text_generation_parameters.items():
        if name in body and body[name] is not None:
            _check_range(name, body[name], spec)
    if model.input == "openai" and body.get("max_completion_tokens") is not None:
        _check_range(
            "max_completion_tokens", body["max_completion_tokens"], catalogue.text_generation_parameters["max_tokens"]
        )
    template = catalogue.chat_template_tokens
    after_tool = False
    prefix = ""
    if has_prompt:
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            raise _mismatch("/prompt", prompt, "string")
        if not prompt:
            raise BadInput("String at '/prompt' is shorter than minLength 1")
        if len(prompt) > catalogue.prompt_max_chars:
            raise BadInput(f"String at '/prompt' is longer than maxLength {catalogue.prompt_max_chars}")
        text, last_user = prompt, prompt
        prompt_tokens = tokens.count(prompt) + (0 if body.get("raw") else template.per_request)
    else:
        turns, after_tool = _messages(body, model, catalogue.prompt_max_chars)
        text = "\n".join(f"{role}: {content}" for role, content in turns)
        last_user = next((c for r, c in reversed(turns) if r == "user"), turns[-1][1])
        # An assistant turn last (or before a last user turn): the answer so far, to continue.
        prefix = next((c for r, c in reversed(turns[-2:]) if r == "assistant"), "")
        prompt_tokens = template.per_request + sum(template.per_message + tokens.count(c) for _, c in turns)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _mismatch("/tools", tools, "array")
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict):
            raise _mismatch(f"/tools/{i}", tool, "object")
    context = model.context_window
    if context is not None and prompt_tokens >= context:
        raise BadInput(f"the input ({prompt_tokens} tokens) exceeds the context window of {context} tokens")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = model.max_tokens_applied
    if context is not None:
        max_tokens = min(max_tokens, context - prompt_tokens)
    stream = bool(body.get("stream", False))
    return (
        Prompt(
            text=text,
            last_user=last_user,
            max_tokens=max_tokens,
            temperature=body.get("temperature"),
            seed=body.get("seed"),
            sampling=tuple(
                body.get(k) for k in ("top_p", "top_k", "repetition_penalty", "frequency_penalty", "presence_penalty")
            ),
            tools=tuple(tools or ()),
            tool_choice=body.get("tool_choice"),
            after_tool=after_tool,
            json_schema=_json_schema(body.get("response_format"), model),
            prefix=prefix,
        ),
        prompt_tokens,
        stream,
    )


def _json_schema(response_format: Any, model: Model) -> dict[str, Any] | None:
    if response_format is None or not model.json_mode:
        return None
    if not isinstance(response_format, dict):
        raise _mismatch("/response_format", response_format, "object")
    kind = response_format.get("type")
    if kind == "json_object":
        return {}
    if kind == "json_schema":
        schema = response_format.get("json_schema")
        if not isinstance(schema, dict):
            raise _mismatch("/response_format/json_schema", schema, "object")
        # OpenAI's wrapper {name, strict, schema} or a bare JSON Schema.
        inner = schema.get("schema") if isinstance(schema.get("schema"), dict) else schema
        return inner
    if kind == "text":
        return None
    raise BadInput(f"Value at '/response_format/type' must be one of 'json_object', 'json_schema'; got {kind!r}")


@dataclass(frozen=True, slots=True)
class EmbeddingInput:
    texts: list[str]
    pooling: str
    query: str | None = None  # bge-m3 ranking


def embedding_input(body: Any, model: Model, *, openai_shape: bool = False) -> tuple[EmbeddingInput, int]:
    """Validate an embeddings body; returns the input and its token count."""
    if not isinstance(body, dict):
        raise _mismatch("/", body, "object")
    key = "input" if openai_shape else "text"
    query: str | None = None
    truncate = bool(body.get("truncate_inputs", False))
    if not openai_shape and "text" not in body and "contexts" in body:
        contexts = body["contexts"]
        if not isinstance(contexts, list):
            raise _mismatch("/contexts", contexts, "array")
        raw: Any = [c.get("text") if isinstance(c, dict) else c for c in contexts]
        key = "contexts"
        query = body.get("query")
        if query is not None and not isinstance(query, str):
            raise _mismatch("/query", query, "string")
    elif key not in body:
        raise BadInput(f"required properties at '/' are '{key}'")
    else:
        raw = body[key]
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list):
        raise _mismatch(f"/{key}", raw, "string")
    if not texts:
        raise BadInput(f"Array at '/{key}' has 0 items, fewer than minItems 1")
    limit = model.max_batch or 100
    if len(texts) > limit:
        raise BadInput(f"Array at '/{key}' has {len(texts)} items, more than maxItems {limit}")
    total = 0
    max_tokens = model.max_input_tokens or 512
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise _mismatch(f"/{key}/{i}", text, "string")
        n = tokens.count(text)
        if n > max_tokens and not truncate:
            raise BadInput(f"String at '/{key}/{i}' has {n} tokens, more than max_input_tokens {max_tokens}")
        total += min(n, max_tokens)
    if query is not None:
        total += tokens.count(query)
    pooling = body.get("pooling", "mean")
    if pooling not in ("mean", "cls"):
        raise BadInput(f"Value at '/pooling' must be one of 'mean', 'cls'; got {pooling!r}")
    if truncate:
        texts = ["".join(tokens.split(t)[:max_tokens]) for t in texts]
    return EmbeddingInput(texts=texts, pooling=pooling, query=query), total
