"""The Workers AI REST client the gateway uses, for the real API and the emulator alike."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

import orjson
from yarl import URL

from workerprobe import __version__
from workerprobe.cloudflare.errors import CloudflareError, StreamBroken, UpstreamUnavailable
from workerprobe.cloudflare.http1 import HTTPFailure, Origin, Response
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
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": f"workerprobe/{__version__}",
        }
        self._timeout_s = timeout_s
        self._origin: Origin | None = None
        self._paths: dict[str, str] = {}

    def _run_path(self, model: str) -> str:
        # Percent-encoded once per model (by yarl, as aiohttp sent it).
        path = self._paths.get(model)
        if path is None:
            path = self._paths[model] = URL(f"{self.base}/run/{model}").raw_path
        return path

    async def start(self) -> None:
        # A client of its own over aiohttp's: less CPU per call than all of the gateway's features
        # (bench/upstream_client.py; the reasons in http1.py).
        self._origin = Origin(self.base, self._headers, timeout_s=self._timeout_s, connect_timeout_s=10)

    async def close(self) -> None:
        if self._origin is not None:
            await self._origin.close()

    @property
    def origin(self) -> Origin:
        if self._origin is None:
            raise RuntimeError("WorkersAI.start() was not called")
        return self._origin

    async def run(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """The `result` of a non-streamed run."""
        origin = self.origin
        try:
            response = await origin.post(self._run_path(model), orjson.dumps(body), headers)
            raw = await response.read()
        except HTTPFailure as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc}") from None
        envelope = _parse(raw, response.status, response.header("retry-after"))
        return envelope.get("result")

    async def stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> AsyncGenerator[dict[str, Any]]:
        """The JSON events of a streamed run, until `[DONE]`; raises before the first one on error."""
        origin = self.origin
        try:
            response = await origin.post(self._run_path(model), orjson.dumps({**body, "stream": True}), headers)
        except HTTPFailure as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc}") from None
        return self._events(response)

    async def _events(self, response: Response) -> AsyncGenerator[dict[str, Any]]:
        try:
            if response.status != 200 or not (response.header("content-type") or "").startswith("text/event-stream"):
                envelope = _parse(await response.read(), response.status, response.header("retry-after"))
                # Some models answer `stream: true` with plain JSON: pass it on as one event.
                yield {"__result__": envelope.get("result")}
                return
            decoder = self.decoder()
            async for chunk in response.chunks():
                for event in decoder.feed(chunk):
                    if event.data == "[DONE]":
                        return
                    try:
                        data = orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        raise StreamBroken(f"malformed event from Workers AI: {event.data[:200]!r}") from None
                    if isinstance(data, dict):
                        yield data
        except HTTPFailure as exc:
            raise StreamBroken(f"the Workers AI stream broke: {exc}") from None
        finally:
            response.close()
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
