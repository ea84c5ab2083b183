"""The one middleware every request passes: request id, authentication, per-key rate limit, metrics.

One layer instead of three: each pure-ASGI layer costs a wrapped `send` per message, and the
gateway benchmark (bench/gateway_bench.py) counts every microsecond at 16 concurrent requests.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workerprobe.gateway.auth import KeyRing
from workerprobe.gateway.errors import GatewayError, Unauthorized
from workerprobe.gateway.freeplan.budget import KeyRateLimiter
from workerprobe.gateway.metrics import Metrics
from workerprobe.ids import unique_hex

__all__ = ["EdgeMiddleware", "client_key"]

_KEY = "workerprobe.key"


def client_key(scope: Scope) -> str:
    """The identity of the key the request authenticated with ("" on routes without auth)."""
    key: str = scope.get(_KEY, "")
    return key


_NO_KEY = "You didn't provide an API key. Send it as a bearer token: `Authorization: Bearer YOUR_KEY`."


class EdgeMiddleware:
    """`x-request-id` on every response (the client's or a new one); a bearer key on every /v1
    route except CORS preflights; requests and latency counted by endpoint and status."""

    def __init__(self, app: ASGIApp, keys: KeyRing, metrics: Metrics, limiter: KeyRateLimiter | None = None) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id: bytes | None = None
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        request_id = request_id or unique_hex().encode()
        metrics = self.metrics

        async def edge_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
                endpoint = getattr(scope.get("endpoint"), "__name__", "unmatched")
                metrics.response(endpoint, str(message["status"]), time.perf_counter() - start)
            await send(message)

        if scope["path"].startswith("/v1") and scope["method"] != "OPTIONS":
            scheme, _, key = authorization.partition(" ")
            identity = await self.keys.identify(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
            if identity is None:
                error: GatewayError = Unauthorized("Incorrect API key provided." if authorization else _NO_KEY)
                metrics.error(error.code or error.type)
                await error(scope, receive, edge_send)
                return
            scope[_KEY] = identity
            if self.limiter is not None:
                try:
                    await self.limiter.hit(identity)
                except GatewayError as refused:
                    metrics.method("rate_limit", "refused")
                    metrics.error(refused.code or refused.type)
                    await refused(scope, receive, edge_send)
                    return
        await self.app(scope, receive, edge_send)
