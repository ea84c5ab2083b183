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
     ├── InternalError          500  -> openai.InternalServerError (anything unexpected; logged)
     ├── BadGateway             502  -> openai.InternalServerError
     ├── ServiceUnavailable     503  -> openai.InternalServerError (the store is down; Retry-After)
     └── GatewayTimeout         504  -> openai.InternalServerError

Messages are the gateway's own words: no library's exception text, no internal host or port
reaches a client (they go to the log).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from workerprobe.cloudflare.errors import (
    CloudflareError,
    UpstreamFailure,
)
from workerprobe.gateway.store.base import StoreUnavailable

log = logging.getLogger("workerprobe.gateway")

__all__ = [
    "BadGateway",
    "BadRequest",
    "GatewayError",
    "GatewayTimeout",
    "InternalError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "ResponseBlocked",
    "ServiceUnavailable",
    "Unauthorized",
    "error_body",
    "from_exception",
    "from_upstream",
    "handle",
]


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    default_headers: ClassVar[dict[str, str]] = {}  # headers every such error carries

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
        self.headers = {**self.default_headers, **(headers or {})}

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


class ResponseBlocked(BadRequest):
    """A guardrail blocked the model's response (Workers AI 2017). Chat completions answer it as
    a completion ended by `content_filter`; elsewhere it is this 400."""

    code = "content_filter"


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
    # The rest of the body is never read: the connection cannot carry another request.
    default_headers: ClassVar[dict[str, str]] = {"connection": "close"}


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    # Not transient until 00:00 UTC: tell the SDK not to retry it.
    default_headers: ClassVar[dict[str, str]] = {"x-should-retry": "false"}


class BadGateway(GatewayError):
    status = 502
    type = "server_error"
    code = "upstream_error"


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    code = "internal_error"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
    default_headers: ClassVar[dict[str, str]] = {"retry-after": "1"}


class GatewayTimeout(GatewayError):
    status = 504
    type = "server_error"
    code = "upstream_timeout"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def from_upstream(exc: UpstreamFailure, model: str | None = None) -> GatewayError:
    """The client-facing error for an upstream failure, by Workers AI error code. When the gateway
    has already retried it, a 429 or 5xx says `x-should-retry: false` (the SDK's retries would
    multiply the gateway's)."""
    error = _from_upstream(exc, model)
    if exc.retried and (error.status == 429 or error.status >= 500):
        error.headers["x-should-retry"] = "false"
    return error


def _from_upstream(exc: UpstreamFailure, model: str | None) -> GatewayError:
    if not isinstance(exc, CloudflareError):  # no answer: what failed goes to the log, not to the client
        log.warning("Workers AI did not answer: %s", exc)
        if exc.deadline_passed:
            return GatewayTimeout("Workers AI did not answer within the gateway's upstream timeout.")
        return BadGateway("Workers AI did not answer (the connection failed or was cut, or its answer was too large).")
    if exc.raw:  # an answer without Workers AI's envelope (a proxy's page): logged, never passed on
        log.warning("Workers AI answered HTTP %s without its envelope: %s", exc.status, exc.raw)
    message = f"Workers AI: {exc.message}"
    if exc.credits_exhausted:
        return QuotaExceeded(f"{message} (the account's prepaid credits are spent)")
    if exc.guardrails_unavailable:
        return ServiceUnavailable(message)
    if exc.response_blocked:
        return ResponseBlocked(message)
    if exc.blocked:
        return BadRequest(message, code="content_filter")
    if exc.daily_quota:
        return QuotaExceeded(f"{message} (the daily neuron allocation is spent; it resets at 00:00 UTC)")
    if exc.capacity:
        return RateLimited(message, code="capacity_exceeded", headers={"retry-after": "1"})
    if exc.rate_limited or exc.status == 429:
        return RateLimited(message, headers={"retry-after": "10"})
    if exc.timed_out:
        return GatewayTimeout(message)
    if exc.retired_model:
        return NotFound(
            f"The model `{model}` was retired by Workers AI ({exc.message}); choose another model.",
            param="model",
            code="model_not_found",
        )
    if exc.unknown_model:
        return NotFound(f"The model `{model}` does not exist", param="model", code="model_not_found")
    if exc.status == 413:
        return PayloadTooLarge(message)
    if exc.credentials_refused:
        return BadGateway("the gateway's Workers AI credentials were refused (CF_API_TOKEN)")
    if 400 <= exc.status < 500:
        return BadRequest(message, code=str(exc.code) if exc.code is not None else None)
    return BadGateway(message)


def from_exception(exc: BaseException, request_id: str = "") -> GatewayError:
    """Any exception as the error a client sees: the gateway's own, an upstream failure, the store
    down (503), or anything else (500, logged with its traceback and the request id)."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, UpstreamFailure):
        return from_upstream(exc)
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable (request %s): %s", request_id, exc)
        return ServiceUnavailable("The gateway's store is unavailable; retry shortly.")
    log.error("unexpected error (request %s)", request_id, exc_info=exc)
    return InternalError(f"The gateway failed on an unexpected error (request id {request_id}).")


async def handle(request: Request, exc: Exception) -> Response:
    """The one exception handler."""
    error = from_exception(exc, request.headers.get("x-request-id", ""))
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.error(error.code or error.type)
    return error.response()
