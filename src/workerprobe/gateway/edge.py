"""The one middleware every request passes: request id, authentication (with a limit on failed
attempts per client address), per-key rate limit, metrics, and the last word on errors: anything
a route raised that no handler took becomes the OpenAI envelope here (500 with the request id,
503 when the store is down), and the connection stays usable.

One layer instead of three: each pure-ASGI layer costs a wrapped `send` per message, and the
gateway benchmark (bench/gateway_bench.py) counts every microsecond at 16 concurrent requests.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workerprobe.gateway import overhead
from workerprobe.gateway.auth import Identity, KeyRing
from workerprobe.gateway.errors import BadRequest, GatewayError, RateLimited, Unauthorized, from_exception
from workerprobe.gateway.freeplan.budget import KeyRateLimiter
from workerprobe.gateway.metrics import Metrics
from workerprobe.ids import unique_hex

__all__ = ["AuthFailures", "EdgeMiddleware", "client_key", "client_project", "request_id"]

_KEY = "workerprobe.key"
_PROJECT = "workerprobe.project"
_REQUEST_ID = "workerprobe.request_id"


def request_id(scope: Scope) -> str:
    """The request's id (the client's x-request-id, or one made here); sent upstream too."""
    value: bytes = scope.get(_REQUEST_ID, b"")
    return value.decode("latin-1")


def client_key(scope: Scope) -> str:
    """The identity of the key the request authenticated with ("" on routes without auth)."""
    key: str = scope.get(_KEY, "")
    return key


def client_project(scope: Scope) -> str:
    """The project whose objects the request may see ("" on routes without auth)."""
    project: str = scope.get(_PROJECT, "")
    return project


# A client's x-request-id is passed on (upstream too, and back) when it is up to 128 printable
# ASCII characters; any other is replaced by the gateway's own.
_REQUEST_ID_FORM = re.compile(rb"[\x21-\x7e]{1,128}")
_NO_KEY = "You didn't provide an API key. Send it as a bearer token: `Authorization: Bearer YOUR_KEY`."


class AuthFailures:
    """Failed authentications per client address: past `limit` distinct wrong keys within
    `window_s`, the address is refused (429 with Retry-After) until its window ends, whatever key
    it sends (so a guess that happens to be right is refused too, and teaches nothing).

    Distinct keys, not attempts: guessing needs new keys, while a client that retries one stale
    key, or a test suite probing every operation with the same invalid key (schemathesis sends
    hundreds of such requests a minute), is no brute force and is never shut out. Kept in the
    process (each replica counts its own); a valid key costs one dict lookup."""

    def __init__(self, limit: int, window_s: float = 60.0, exempt: frozenset[str] = frozenset()) -> None:
        self.limit = limit
        self.window_s = window_s
        self.exempt = exempt
        self._seen: dict[str, tuple[float, set[bytes]]] = {}  # address -> (window start, wrong keys)

    def blocked_for(self, address: str, now: float) -> float:
        """Seconds the address stays refused (0: not refused)."""
        entry = self._seen.get(address)
        if entry is None:
            return 0.0
        start, wrong = entry
        if now - start >= self.window_s:
            del self._seen[address]
            return 0.0
        return start + self.window_s - now if len(wrong) >= self.limit else 0.0

    def failed(self, address: str, key: str, now: float) -> None:
        if address in self.exempt:
            return
        start, wrong = self._seen.get(address, (now, set()))
        if now - start >= self.window_s:
            start, wrong = now, set()
        if len(wrong) < self.limit:
            wrong.add(hashlib.blake2b(key.encode(), digest_size=8).digest())
        self._seen[address] = (start, wrong)
        if len(self._seen) > 100_000:  # bounded: the oldest windows go first
            for stale in sorted(self._seen, key=lambda a: self._seen[a][0])[:50_000]:
                del self._seen[stale]


Handler = Callable[[Request], Awaitable[Response]]


class EdgeMiddleware:
    """`x-request-id` on every response (the client's or a new one); a bearer key on every /v1
    route except CORS preflights; requests and latency counted by endpoint and status.

    `hot`: POST routes by exact path (chat completions, embeddings) that the edge calls itself,
    past Starlette's exception layer and router (a sixth of the app's CPU per request, measured by
    bench/app_cost.py). Nothing else changes for them: what they raise becomes the envelope here,
    as the exception handlers make it (both are `errors.from_exception`), and every other method
    or path, their 405s included, still goes through the router."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyRing,
        metrics: Metrics,
        limiter: KeyRateLimiter | None = None,
        failures: AuthFailures | None = None,
        hot: Mapping[str, Handler] | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.limiter = limiter
        self.failures = failures
        self.hot = dict(hot or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id: bytes | None = None
        authorization = ""
        keys = 0
        has_body = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"authorization":
                authorization = value.decode("latin-1")
                keys += 1
            elif name == b"content-length":
                has_body = value != b"0"
            elif name == b"transfer-encoding":
                has_body = True
        if request_id is None or not _REQUEST_ID_FORM.fullmatch(request_id):
            request_id = unique_hex().encode()  # none, or not one the gateway passes on: its own
        scope[_REQUEST_ID] = request_id
        metrics = self.metrics
        started = False
        upstream, token = overhead.begin()

        async def edge_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                elapsed = time.perf_counter() - start
                own = max(elapsed - upstream.seconds, 0.0)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id),
                    (overhead.HEADER, f"{own * 1000:.3f}".encode()),
                ]
                endpoint = getattr(scope.get("endpoint"), "__name__", "unmatched")
                metrics.response(endpoint, str(message["status"]), elapsed)
                metrics.own_time(endpoint, own)
            await send(message)

        try:
            if scope["path"].startswith("/v1") and scope["method"] != "OPTIONS":
                refused = (
                    BadRequest("Send one Authorization header, not several.", param="authorization")
                    if keys > 1
                    else await self._authenticate(scope, authorization)
                )
                if refused is not None:
                    metrics.error(refused.code or refused.type)
                    if has_body:  # its body is never read: the connection closes after the answer
                        refused.headers["connection"] = "close"
                    await refused(scope, receive, edge_send)
                    return
            handler = self.hot.get(scope["path"]) if scope["method"] == "POST" else None
            if handler is not None:
                scope["endpoint"] = handler
                response = await handler(Request(scope, receive, edge_send))
                await response(scope, receive, edge_send)
                return
            await self.app(scope, receive, edge_send)
        except Exception as exc:
            if started:  # the answer is on its way: the connection is cut, as it must be
                raise
            error = from_exception(exc, request_id.decode("latin-1"))
            metrics.error(error.code or error.type)
            await error(scope, receive, edge_send)
        finally:
            overhead.end(token)

    async def _authenticate(self, scope: Scope, authorization: str) -> GatewayError | None:
        """None when the request may go on (its key and project in the scope), else the refusal."""
        address = (scope.get("client") or ("", 0))[0]
        now = time.monotonic()
        failures = self.failures
        if failures is not None:
            wait = failures.blocked_for(address, now)
            if wait:
                self.metrics.method("auth", "refused_address")
                return RateLimited(
                    "Too many failed authentications from your address; retry later.",
                    code="too_many_auth_failures",
                    headers={"retry-after": str(int(wait) + 1), "x-should-retry": "false"},
                )
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        identity: Identity | None = await self.keys.identify(key) if scheme.lower() == "bearer" and key else None
        if identity is None:
            if failures is not None and authorization:
                failures.failed(address, authorization, now)
            return Unauthorized("Incorrect API key provided." if authorization else _NO_KEY)
        scope[_KEY] = identity.key
        scope[_PROJECT] = identity.project
        if self.limiter is not None:
            try:
                await self.limiter.hit(identity.key)
            except GatewayError as refused:
                self.metrics.method("rate_limit", "refused")
                return refused
        return None
