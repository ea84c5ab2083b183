"""Wire types shared by the endpoint families, and request parsing into them."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from workerprobe.gateway.errors import BadRequest, PayloadTooLarge

__all__ = [
    "MAX_DEPTH",
    "FunctionTool",
    "Int",
    "NamedToolChoice",
    "OpenAIModel",
    "ResponseFormat",
    "TokenLimit",
    "ToolCall",
    "check_metadata",
    "check_shape",
    "declared",
    "json_response",
    "parse_body",
    "read_body",
]

T = TypeVar("T", bound=BaseModel)


_INT_RANGE = 2**63  # what the store's JSON encoder writes (and far past any token count)
MAX_DEPTH = 64  # levels of nesting in a request body (JSON Schemas of tools included)


def _integral(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer; strict mode would not. Past 64 bits it stays a float,
    # which strict validation refuses (a 400 naming the field, never a 500 when it is stored).
    if isinstance(value, float) and value.is_integer() and -_INT_RANGE < value < _INT_RANGE:
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral), Field(ge=-_INT_RANGE, lt=_INT_RANGE)]
"""An integer field (64 bits, as OpenAI's) that accepts integral JSON numbers (2.0) but not
booleans or strings."""


def _token_limit(value: Any) -> Any:
    # A token limit past 64 bits (JSON has no bound; orjson reads one past 2**64 as a float) asks
    # for more than any context window: read as the largest, so that the context check answers it
    # as it answers any limit over the model's window (400 context_length_exceeded).
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= _INT_RANGE:
        if isinstance(value, int) or value.is_integer():
            return _INT_RANGE - 1
    return _integral(value)


TokenLimit = Annotated[int, BeforeValidator(_token_limit), Field(ge=-_INT_RANGE, lt=_INT_RANGE)]
"""A token limit: an `Int`, except that one past 64 bits reads as the largest."""


class OpenAIModel(BaseModel):
    """Request bodies: unknown fields are allowed (clients send extensions) but not used. Types
    are strict (no `false` for a number, no `"1"` for an integer), and fields OpenAI does not
    make nullable reject an explicit `null`."""

    model_config = ConfigDict(extra="allow", strict=True)
    NOT_NULL: ClassVar[frozenset[str]] = frozenset()


# --- tools and response formats, as chat completions, assistants and runs take them -------------


class _Function(OpenAIModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    # Defaults that an explicit null does not meet: OpenAI does not make these nullable.
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class FunctionTool(OpenAIModel):
    type: Literal["function"]
    function: _Function


class _CalledFunction(OpenAIModel):
    name: str
    arguments: str


class ToolCall(OpenAIModel):
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: _CalledFunction


class _NamedFunction(OpenAIModel):
    name: str


class NamedToolChoice(OpenAIModel):
    type: Literal["function"]
    function: _NamedFunction


class _JsonSchema(OpenAIModel):
    name: str
    strict: bool = False
    description: str = ""
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")


class ResponseFormat(OpenAIModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    """OpenAI's limits on `metadata`: 16 keys, keys of 64 characters, values of 512."""
    if value is None:
        return value
    if len(value) > 16:
        raise ValueError("metadata can have at most 16 keys")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(f"metadata key {key[:20]!r}... is longer than 64 characters")
        if len(item) > 512:
            raise ValueError(f"metadata value of {key!r} is longer than 512 characters")
    return value


def declared(model: BaseModel) -> dict[str, Any]:
    """The fields a client set that the model declares: extensions a client sent are accepted
    but never stored or forwarded."""
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        if name not in model.model_fields_set:
            continue
        out[info.alias or name] = _declared_value(getattr(model, name))
    return out


def _declared_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return declared(value)
    if isinstance(value, list):
        return [_declared_value(v) for v in value]
    return value


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, read until `max_bytes`: a larger one (declared, or chunked) is a 413 after at
    most the limit and one chunk were read, and the connection is closed (the rest is never read).
    Read from the ASGI messages directly (one message for most bodies), not through Starlette's
    stream generator, and kept on the request as Starlette keeps it (`request.body()` reads it)."""
    kept: bytes | None = getattr(request, "_body", None)
    if kept is not None:
        if len(kept) > max_bytes:
            raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
        return kept
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > max_bytes:
                raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
            break
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ClientDisconnect()
        if kind != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
        if not message.get("more_body", False):
            body = chunk if not chunks else b"".join([*chunks, chunk])
            break
        chunks.append(chunk)
    request._body = body
    request._stream_consumed = True
    return body


def check_shape(data: Any) -> None:
    """400 with `param` for nesting deeper than MAX_DEPTH anywhere in the body (free-form fields
    included: tool schemas, response formats, tool resources), which the store and the upstream's
    JSON encoder could not write. Numbers need no check here: integers past 64 bits arrive as
    floats, which `Int` fields refuse and free-form fields keep as floats."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(data, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if depth >= MAX_DEPTH:
            param = ".".join(path[:3]) or None
            raise BadRequest(f"Invalid value for '{param}': nested more than {MAX_DEPTH} levels deep.", param=param)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for name, item in items:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1, (*path, str(name)) if depth < 3 else path))


async def parse_body(request: Request, kind: type[T], max_bytes: int | None = None, *, optional: bool = False) -> T:
    """The JSON body as `kind`; malformed JSON, wrong types, missing fields, nesting and numbers
    out of range are 400 with `param`. An `optional` body may be left out (it reads as `{}`).
    `max_bytes`: the gateway's `max_body_bytes` unless given."""
    limit = max_bytes if max_bytes is not None else request.app.state.settings.max_body_bytes
    raw = await read_body(request, limit)
    if optional and not raw:
        raw = b"{}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"We could not parse the JSON body of your request ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}). The body must be a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    # Nesting deeper than MAX_DEPTH takes more than MAX_DEPTH opening brackets: a body with fewer
    # (brackets inside strings counted too, so never too few) needs no walk.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        check_shape(data)
    _reject_nulls(kind, data, "")
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequest(_message(first, param), param=param) from None


def _reject_nulls(kind: type[BaseModel], data: dict[str, Any], prefix: str) -> None:
    for name in getattr(kind, "NOT_NULL", ()):
        if name in data and data[name] is None:
            param = f"{prefix}{name}"
            raise BadRequest(f"Invalid value for '{param}': null is not allowed.", param=param)


def _message(error: Any, param: str | None) -> str:
    if error["type"] == "missing":
        return f"Missing required parameter: '{param}'."
    return f"Invalid value for '{param}': {error['msg']}."


def json_response(body: object, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (orjson: a third of the time of the standard library's encoder)."""
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)
