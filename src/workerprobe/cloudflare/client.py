"""The Workers AI REST client the gateway uses, for the real API and the emulator alike."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

import aiohttp
import orjson
from yarl import URL

from workerprobe.cloudflare.errors import CloudflareError, StreamBroken, UpstreamUnavailable
from workerprobe.sse import Decoder

__all__ = ["WorkersAI"]


class WorkersAI:
    """`POST /accounts/{id}/ai/run/{model}`: JSON results and SSE streams, errors as exceptions."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        token: str,
        timeout_s: float = 300.0,
        decoder: Callable[[], Decoder] = Decoder,
    ) -> None:
        self.decoder = decoder  # a seam: the selftest gives a defective one
        self.base = f"{base_url.rstrip('/')}/accounts/{account_id}/ai"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def _run_url(self, model: str) -> URL:
        # Parsed once per model: building a URL from a string on every call showed in profiles.
        url = self._urls.get(model)
        if url is None:
            url = self._urls[model] = URL(f"{self.base}/run/{model}")
        return url

    async def start(self) -> None:
        # aiohttp over httpx: a third to a sixth of the CPU per upstream call (measured side by
        # side on this project's benchmark machine; bench/gateway_bench.py).
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("WorkersAI.start() was not called")
        return self._session

    async def run(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """The `result` of a non-streamed run."""
        try:
            async with self.session.post(self._run_url(model), data=orjson.dumps(body), headers=headers) as r:
                raw = await r.read()
                status = r.status
                retry_after = r.headers.get("retry-after")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc!r}") from None
        envelope = _parse(raw, status, retry_after)
        return envelope.get("result")

    async def stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> AsyncGenerator[dict[str, Any]]:
        """The JSON events of a streamed run, until `[DONE]`; raises before the first one on error."""
        try:
            response = await self.session.post(
                self._run_url(model), data=orjson.dumps({**body, "stream": True}), headers=headers
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc!r}") from None
        return self._events(response)

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncGenerator[dict[str, Any]]:
        async with response:
            if response.status != 200 or not response.headers.get("content-type", "").startswith("text/event-stream"):
                envelope = _parse(await response.read(), response.status, response.headers.get("retry-after"))
                # Some models answer `stream: true` with plain JSON: pass it on as one event.
                yield {"__result__": envelope.get("result")}
                return
            decoder = self.decoder()
            try:
                async for chunk in response.content.iter_any():
                    for event in decoder.feed(chunk):
                        if event.data == "[DONE]":
                            return
                        try:
                            data = orjson.loads(event.data)
                        except orjson.JSONDecodeError:
                            raise StreamBroken(f"malformed event from Workers AI: {event.data[:200]!r}") from None
                        if isinstance(data, dict):
                            yield data
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise StreamBroken(f"the Workers AI stream broke: {exc!r}") from None
            raise StreamBroken("the Workers AI stream ended without [DONE]")


def _parse(raw: bytes, status: int, retry_after: str | None = None) -> dict[str, Any]:
    """The envelope of a response; an error envelope (or junk) raises CloudflareError."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CloudflareError(status if status >= 400 else 502, None, f"non-JSON answer: {raw[:200]!r}") from None
    if not isinstance(body, dict):
        raise CloudflareError(status if status >= 400 else 502, None, f"unexpected answer: {raw[:200]!r}")
    errors = body.get("errors") or []
    if status >= 400 or body.get("success") is False:
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        error = CloudflareError(status, first.get("code"), str(first.get("message", "unknown error")))
        error.retry_after = _seconds(retry_after)
        raise error
    return body


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds form; an HTTP date is read as unknown)."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
