"""The Workers AI REST client the gateway uses, for the real API and the emulator alike."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import orjson
from yarl import URL

from workerprobe import __version__
from workerprobe.cloudflare.errors import CloudflareError, StreamBroken, UpstreamUnavailable
from workerprobe.cloudflare.http1 import Origin, Response
from workerprobe.cloudflare.library import LibraryOrigin, LibraryResponse
from workerprobe.cloudflare.wire import HTTPFailure, release_memory
from workerprobe.sse import Decoder

__all__ = ["Limits", "WorkersAI"]

log = logging.getLogger(__name__)
_MESSAGE_CHARS = 300  # of an error envelope's message, passed on to clients


@dataclass(frozen=True)
class Limits:
    """What the upstream may send: a body read whole, one event of a stream, a whole stream."""

    body_bytes: int = 8 * 1024 * 1024
    event_bytes: int = 1024 * 1024
    stream_bytes: int = 64 * 1024 * 1024


class WorkersAI:
    """`POST /accounts/{id}/ai/run/{model}`: JSON results and SSE streams, errors as exceptions,
    every answer within `limits` and `timeout_s` (HTTPFailure past them: UpstreamUnavailable or
    StreamBroken, the connection closed)."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        token: str,
        timeout_s: float = 300.0,
        decoder: Callable[[], Decoder] = Decoder,
        limits: Limits = Limits(),
        client: str = "own",
    ) -> None:
        self.decoder = decoder  # a seam: the selftest gives a defective one
        self.limits = limits
        self.client = client  # "own" (http1.py) or "aiohttp" (library.py), the same methods
        self.base = f"{base_url.rstrip('/')}/accounts/{account_id}/ai"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": f"workerprobe/{__version__}",
        }
        self._timeout_s = timeout_s
        self._origin: Origin | LibraryOrigin | None = None
        self._paths: dict[str, str] = {}

    def _run_path(self, model: str) -> str:
        # Percent-encoded once per model (by yarl, as aiohttp sent it).
        path = self._paths.get(model)
        if path is None:
            path = self._paths[model] = URL(f"{self.base}/run/{model}").raw_path
        return path

    async def start(self) -> None:
        # A client of its own over aiohttp's: less CPU per call than all of the gateway's features
        # (bench/upstream_client.py; the reasons in http1.py). aiohttp's stays behind a setting.
        if self.client == "aiohttp":
            self._origin = LibraryOrigin(self.base, self._headers, timeout_s=self._timeout_s, connect_timeout_s=10)
            return
        proxy = _proxy_for(self.base)
        if proxy:
            log.warning(
                "%s is set for %s, but the gateway's own upstream client connects directly: set "
                "WORKERPROBE_GATEWAY_UPSTREAM_CLIENT=aiohttp to go through the proxy",
                proxy,
                self.base,
            )
        self._origin = Origin(self.base, self._headers, timeout_s=self._timeout_s, connect_timeout_s=10)

    async def close(self) -> None:
        if self._origin is not None:
            await self._origin.close()

    @property
    def origin(self) -> Origin | LibraryOrigin:
        if self._origin is None:
            raise RuntimeError("WorkersAI.start() was not called")
        return self._origin

    async def run(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """The `result` of a non-streamed run."""
        origin = self.origin
        try:
            response = await origin.post(self._run_path(model), orjson.dumps(body), headers)
            raw = await response.read(self.limits.body_bytes)
        except HTTPFailure as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc}", deadline_passed=exc.timed_out) from None
        envelope = _parse(raw, response.status, response.header("retry-after"), response.header("content-type"))
        return envelope.get("result")

    async def responses(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """`POST /ai/v1/responses` (the GPT-OSS models): the Response object, not enveloped; an
        error in Cloudflare's envelope raises as for a run."""
        origin = self.origin
        try:
            response = await origin.post(f"{URL(self.base).raw_path}/v1/responses", orjson.dumps(body), headers)
            raw = await response.read(self.limits.body_bytes)
        except HTTPFailure as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc}", deadline_passed=exc.timed_out) from None
        kind = response.header("content-type")
        if response.status >= 400:
            _parse(raw, response.status, response.header("retry-after"), kind)  # raises
        try:
            result = orjson.loads(raw)
        except orjson.JSONDecodeError:
            result = None
        if not isinstance(result, dict) or result.get("object") != "response":
            what = f"an answer that is not a Response object ({kind or 'no content type'}, {len(raw)} bytes)"
            raise CloudflareError(502, None, what, raw=repr(raw[:300]))
        return result

    async def stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> AsyncGenerator[dict[str, Any]]:
        """The JSON events of a streamed run, until `[DONE]`; raises before the first one on error."""
        origin = self.origin
        try:
            response = await origin.post(self._run_path(model), orjson.dumps({**body, "stream": True}), headers)
        except HTTPFailure as exc:
            raise UpstreamUnavailable(f"Workers AI did not answer: {exc}", deadline_passed=exc.timed_out) from None
        return self._events(response)

    async def _events(self, response: Response | LibraryResponse) -> AsyncGenerator[dict[str, Any]]:
        limits = self.limits
        try:
            kind = response.header("content-type")
            if response.status != 200 or not (kind or "").startswith("text/event-stream"):
                raw = await response.read(limits.body_bytes)
                envelope = _parse(raw, response.status, response.header("retry-after"), kind)
                # Some models answer `stream: true` with plain JSON: pass it on as one event.
                yield {"__result__": envelope.get("result")}
                return
            decoder = self.decoder()
            pending = 0  # bytes received since the last event ended (at most): one event's size
            async for chunk in response.chunks(limits.stream_bytes):
                events = decoder.feed(chunk)
                pending = len(chunk) if events else pending + len(chunk)
                if pending > limits.event_bytes:
                    release_memory()
                    raise StreamBroken(f"an event of the Workers AI stream is larger than {limits.event_bytes} bytes")
                for event in events:
                    if event.data == "[DONE]":
                        return
                    try:
                        data = orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        raise StreamBroken(f"malformed event from Workers AI ({len(event.data)} characters)") from None
                    if isinstance(data, dict):
                        yield data
        except HTTPFailure as exc:
            raise StreamBroken(f"the Workers AI stream broke: {exc}", deadline_passed=exc.timed_out) from None
        finally:
            response.close()
        raise StreamBroken("the Workers AI stream ended without [DONE]")


def _parse(raw: bytes, status: int, retry_after: str | None = None, content_type: str | None = None) -> dict[str, Any]:
    """The envelope of a response; an error envelope (or anything else) raises CloudflareError,
    whose message never carries the answer's own text (a proxy's HTML page, say): that goes to
    `raw`, for the log."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        what = (
            f"an answer that is not Workers AI's JSON envelope ({content_type or 'no content type'}, {len(raw)} bytes)"
        )
        raise CloudflareError(status if status >= 400 else 502, None, what, raw=repr(raw[:300]))
    errors = body.get("errors") or []
    if status >= 400 or body.get("success") is False:
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = first.get("code")
        message = "".join(c for c in str(first.get("message", "unknown error")) if c.isprintable())
        error = CloudflareError(status, code if isinstance(code, int) else None, message[:_MESSAGE_CHARS])
        error.retry_after = _seconds(retry_after)
        raise error
    return body


def _proxy_for(url: str) -> str | None:
    """The name of the proxy variable the environment sets for `url` (None: none, or bypassed)."""
    parts = urlsplit(url)
    proxies = getproxies()
    if parts.scheme not in proxies or proxy_bypass(parts.hostname or ""):
        return None
    return f"{parts.scheme.upper()}_PROXY"


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds form; an HTTP date is read as unknown)."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
