"""Wire types shared by the endpoint families, and request parsing into them."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request

from workerprobe.gateway.errors import BadRequest, PayloadTooLarge

__all__ = ["OpenAIModel", "parse_body"]

T = TypeVar("T", bound=BaseModel)


class OpenAIModel(BaseModel):
    """Request bodies: unknown fields are allowed (clients send extensions) but not used."""

    model_config = ConfigDict(extra="allow")


async def parse_body(request: Request, kind: type[T], max_bytes: int) -> T:
    """The JSON body as `kind`; malformed JSON, wrong types and missing fields are 400 with `param`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"We could not parse the JSON body of your request ({exc}). The body must be a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequest(_message(first, param), param=param) from None


def _message(error: Any, param: str | None) -> str:
    if error["type"] == "missing":
        return f"Missing required parameter: '{param}'."
    return f"Invalid value for '{param}': {error['msg']}."
