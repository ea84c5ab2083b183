"""`Idempotency-Key` on the POSTs that create stored objects: a client that retries after a
connection error makes no duplicate.

The first request with a key is executed and its answer (2xx or 4xx) kept for 24 hours, per
project, path and key; a request with the same key and the same body gets that answer again
(`idempotent-replayed: true`), with another body a 409. While the first is still executing, a
second one is a 409 too (the client retries it later). A 5xx is not kept: the retry executes.
A streamed run is never replayed (the stream is not kept); its key only guards against a
concurrent duplicate.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from workerprobe.gateway.edge import client_project
from workerprobe.gateway.errors import BadRequest, GatewayError, from_exception
from workerprobe.gateway.protocol import read_body
from workerprobe.gateway.store import Store

__all__ = ["HEADER", "TTL_S", "idempotent"]

HEADER = "idempotency-key"
TTL_S = 24 * 3600.0
_CLAIM_S = 120.0


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "idempotency_conflict"


Route = Callable[[Request], Awaitable[Response]]


def idempotent(route: Route) -> Route:
    @functools.wraps(route)
    async def guarded(request: Request) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return await route(request)
        if not 1 <= len(key) <= 255:
            raise BadRequest("Idempotency-Key must be 1 to 255 characters.", param=HEADER)
        state = request.app.state
        store: Store = state.store
        raw = await read_body(request, state.settings.max_body_bytes)
        request._body = raw  # the route parses the same bytes (Starlette reads `_body` first)
        slot = hashlib.sha256(f"{client_project(request.scope)}\n{request.url.path}\n{key}".encode()).hexdigest()
        digest = hashlib.sha256(raw).hexdigest()
        kept = await store.cache_get(f"idem:{slot}")
        if kept is not None:
            return _replay(orjson.loads(kept), digest)
        if await store.add(f"idem-claim:{slot}", 1, _CLAIM_S) > 1:
            await store.add(f"idem-claim:{slot}", -1, _CLAIM_S)
            raise Conflict("A request with this Idempotency-Key is still being processed; retry it later.")
        try:
            try:
                response = await route(request)
            except Exception as exc:
                response = from_exception(exc).response()
            if response.status_code < 500 and hasattr(response, "body"):
                entry = {"digest": digest, "status": response.status_code, "body": bytes(response.body).decode()}
                await store.cache_put(f"idem:{slot}", orjson.dumps(entry), TTL_S)
            return response
        finally:
            await store.add(f"idem-claim:{slot}", -1, _CLAIM_S)

    return guarded


def _replay(entry: dict[str, object], digest: str) -> Response:
    if entry["digest"] != digest:
        raise Conflict(
            "This Idempotency-Key was used with another request body; use a new key for a new request.",
            param=HEADER,
        )
    return Response(
        str(entry["body"]),
        int(str(entry["status"])),
        {"idempotent-replayed": "true"},
        media_type="application/json",
    )
