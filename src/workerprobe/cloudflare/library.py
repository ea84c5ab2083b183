"""aiohttp's client behind the methods of the gateway's own (`http1.Origin`: `post`, and the
answer's `header`, `read`, `chunks`, `close`), with the same bounds: a switch for a problem in the
field (`WORKERPROBE_GATEWAY_UPSTREAM_CLIENT=aiohttp`), not a patch. It also honours the
environment's proxy settings (`HTTPS_PROXY`), which the gateway's own client does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from workerprobe.cloudflare.wire import MAX_HEAD_BYTES, MAX_HEADERS, HTTPFailure, release_memory

__all__ = ["LibraryOrigin", "LibraryResponse"]

_CHUNK = 64 * 1024


def _failure(exc: BaseException) -> HTTPFailure:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return HTTPFailure(f"no complete answer in time: {exc!r}", timed_out=True)
    return HTTPFailure(f"{type(exc).__name__}: {exc}")


class LibraryResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    def _declared_over(self, limit: int) -> None:
        length = self._response.content_length
        if length is not None and length > limit:
            raise HTTPFailure(f"the answer declares {length} bytes, more than the {limit} allowed")

    async def read(self, limit: int) -> bytes:
        body = bytearray()
        async for chunk in self.chunks(limit):
            body += chunk
        return bytes(body)

    async def chunks(self, limit: int) -> AsyncIterator[bytes]:
        size = 0
        try:
            self._declared_over(limit)
            async for chunk in self._response.content.iter_any():
                size += len(chunk)
                if size > limit:
                    release_memory()
                    raise HTTPFailure(f"the answer is larger than the {limit} bytes allowed")
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _failure(exc) from None
        finally:
            self.close()

    def close(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()  # the rest unread: the connection is not reused


class LibraryOrigin:
    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 10.0,
        idle_s: float = 15.0,
    ) -> None:
        self.origin = str(URL(base_url).origin())
        self.headers = dict(headers or {})
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.idle_s = idle_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=self.idle_s)
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=self.timeout,
                connector=connector,
                trust_env=True,  # HTTPS_PROXY and the like
                max_line_size=MAX_HEAD_BYTES,
                max_field_size=MAX_HEAD_BYTES,
                max_headers=MAX_HEADERS,
            )
        return self._session

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> LibraryResponse:
        try:
            response = await self._client().post(
                URL(f"{self.origin}{path}", encoded=True), data=body, headers=dict(headers or {})
            )
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise _failure(exc) from None
        return LibraryResponse(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
