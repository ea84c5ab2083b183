"""Client authentication: a bearer key on every /v1 route, compared in constant time.

Keys are held as SHA-256 digests only; a wrong or missing key is a 401 in the OpenAI envelope
with code `invalid_api_key`. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from workerprobe.gateway.errors import Unauthorized

__all__ = ["AuthMiddleware", "digest"]


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class AuthMiddleware:
    """Pure ASGI: checks `Authorization: Bearer <key>` on paths under /v1."""

    def __init__(self, app: ASGIApp, digests: set[bytes]) -> None:
        self.app = app
        self.digests = digests

    def allowed(self, header: str) -> bool:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        candidate = digest(key.strip())
        # Compare against every digest so timing does not depend on which one matches.
        return any([hmac.compare_digest(candidate, d) for d in self.digests])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1") or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if not self.allowed(header):
            message = (
                "Incorrect API key provided."
                if header
                else "You didn't provide an API key. Send it as a bearer token: `Authorization: Bearer YOUR_KEY`."
            )
            await Unauthorized(message)(scope, receive, send)
            return
        await self.app(scope, receive, send)
