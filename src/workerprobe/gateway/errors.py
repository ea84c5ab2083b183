"""The gateway's one error type and its one handler: every failure becomes the OpenAI envelope
`{"error": {"message", "type", "param", "code"}}` with the status the `openai` SDK maps to the
right exception class.

    GatewayError(status, message, type, code, param)
     ├── BadRequest             400  -> openai.BadRequestError
     ├── Unauthorized           401  -> openai.AuthenticationError
     ├── NotFound               404  -> openai.NotFoundError
     ├── MethodNotAllowed       405
     ├── PayloadTooLarge        413
     ├── RateLimited            429  -> openai.RateLimitError   (Retry-After; retried by the SDK)
     ├── QuotaExceeded          429  -> openai.RateLimitError   (x-should-retry: false)
     ├── BadGateway             502  -> openai.InternalServerError
     └── GatewayTimeout         504  -> openai.InternalServerError
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from workerprobe.cloudflare.errors import (
    CloudflareError,
    UpstreamFailure,
)

__all__ = [
    "BadGateway",
    "BadRequest",
    "GatewayError",
    "GatewayTimeout",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "Unauthorized",
    "error_body",
    "from_upstream",
    "handle",
]


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), self.status, self.headers, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer directly as an ASGI app (for middleware)."""
        await self.response()(scope, receive, send)


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # Not transient until 00:00 UTC: tell the SDK not to retry it.
        self.headers.setdefault("x-should-retry", "false")


class BadGateway(GatewayError):
    status = 502
    type = "server_error"
    code = "upstream_error"


class GatewayTimeout(GatewayError):
    status = 504
    type = "server_error"
    code = "upstream_timeout"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def from_upstream(exc: UpstreamFailure, model: str | None = None) -> GatewayError:
    """The client-facing error for an upstream failure, by Workers AI error code."""
    if not isinstance(exc, CloudflareError):
        return BadGateway(f"Workers AI is unavailable: {exc}")
    message = f"Workers AI: {exc.message}"
    if exc.daily_quota:
        return QuotaExceeded(f"{message} (the daily neuron allocation is spent; it resets at 00:00 UTC)")
    if exc.capacity:
        return RateLimited(message, code="capacity_exceeded", headers={"retry-after": "1"})
    if exc.rate_limited or exc.status == 429:
        return RateLimited(message, headers={"retry-after": "10"})
    if exc.timed_out:
        return GatewayTimeout(message)
    if exc.unknown_model:
        return NotFound(f"The model `{model}` does not exist", param="model", code="model_not_found")
    if exc.status == 413:
        return PayloadTooLarge(message)
    if exc.credentials_refused:
        return BadGateway("the gateway's Workers AI credentials were refused (CF_API_TOKEN)")
    if 400 <= exc.status < 500:
        return BadRequest(message, code=str(exc.code) if exc.code is not None else None)
    return BadGateway(message)


async def handle(request: Request, exc: Exception) -> Response:
    """The one exception handler."""
    if isinstance(exc, UpstreamFailure):
        exc = from_upstream(exc)
    if not isinstance(exc, GatewayError):
        raise RuntimeError("unexpected state: isinstance(exc, GatewayError)")
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.error(exc.code or exc.type)
    return exc.response()
