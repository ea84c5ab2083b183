"""Every answer the suite reads is bounded, whatever the target sends: in size (`MAX_ANSWER_BYTES`,
the whole body; `MAX_STREAM_BYTES`, an event stream, whose every event becomes an object; headers
are bounded by the HTTP libraries themselves: h11 16 KB, http.client 100 lines of 64 KB), and in
time (a deadline on the whole exchange, from the request until the answer's last byte, not only
between bytes), and the run as a whole has a deadline.

- `transport()` / `async_transport()`: httpx transports for the SDK scenarios, the pre-flight and
  the ledger's deletes;
- `session()`: a requests session for the generated contract cases (schemathesis sends through it);
- `run_deadline()` / `remaining()`: the run's own deadline (`WORKERPROBE_RUN_DEADLINE`, set by
  `workerprobe test --deadline`), after which no further request is made.

An answer past a bound raises `Unbounded` (for httpx, a transport error: the SDK raises
APIConnectionError); the contract tests record it as a finding and stop sending to a target that
answered past its bounds several times in a row.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import requests
from requests.adapters import HTTPAdapter

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_STREAM_BYTES",
    "REQUEST_DEADLINE_S",
    "RunOver",
    "Unbounded",
    "UnboundedRequests",
    "async_transport",
    "client",
    "default_deadline",
    "release_memory",
    "max_answer_bytes",
    "remaining",
    "request_deadline",
    "run_deadline",
    "session",
    "transport",
]

# The largest answer read. The largest real one the suite asks for is the embeddings of 2,048 inputs
# (OpenAI's most) at 1,024 dimensions (the widest Workers AI model): about 40 MB of JSON floats.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# The largest event stream read. The longest the suite asks for is a few hundred tokens (about 300
# bytes an event): under 1 MB. Every event becomes an SDK object about 20 times its size, so a
# stream that never ends costs 20 times what it sent: 4 MB of events is under 100 MB of objects.
MAX_STREAM_BYTES = 4 * 1024 * 1024
# The longest a whole exchange may take (the SDKs wait far longer, between bytes only).
REQUEST_DEADLINE_S = 60.0
_CHUNK = 64 * 1024


def max_answer_bytes(content_type: str | None = None) -> int:
    """The largest answer read (`WORKERPROBE_MAX_ANSWER_BYTES`, set by `workerprobe test`); of an
    event stream, the lesser of that and `WORKERPROBE_MAX_STREAM_BYTES` (default MAX_STREAM_BYTES)."""
    cap = int(os.environ.get("WORKERPROBE_MAX_ANSWER_BYTES") or MAX_ANSWER_BYTES)
    if content_type is not None and "event-stream" in content_type.lower():
        return min(cap, int(os.environ.get("WORKERPROBE_MAX_STREAM_BYTES") or MAX_STREAM_BYTES))
    return cap


def default_deadline() -> float:
    """One exchange's deadline (`WORKERPROBE_REQUEST_DEADLINE_S`, set by `workerprobe test`)."""
    return float(os.environ.get("WORKERPROBE_REQUEST_DEADLINE_S") or REQUEST_DEADLINE_S)


_LIBC = ctypes.util.find_library("c")


_RELEASED = {"rss": 0}
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


def release_memory(grown: int = 64 * 1024 * 1024) -> None:
    """Give the heap's free memory back to the system (glibc keeps what was freed, scattered), when
    the process grew by `grown` bytes since it last did (a collection costs tens of milliseconds)."""
    try:
        now = _rss()
    except OSError:
        return
    if now - _RELEASED["rss"] < grown:
        return
    gc.collect()
    if _LIBC is not None:
        ctypes.CDLL(_LIBC).malloc_trim(0)
    _RELEASED["rss"] = _rss()


class RunOver(Exception):
    """The run's deadline passed: no further request is made."""


def run_deadline() -> float | None:
    """The run's deadline, as wall-clock seconds since the epoch (None: none was set)."""
    value = os.environ.get("WORKERPROBE_RUN_DEADLINE")
    return float(value) if value else None


def remaining() -> float:
    """Seconds left before the run's deadline (infinite when none was set)."""
    deadline = run_deadline()
    return float("inf") if deadline is None else deadline - time.time()


def request_deadline(own: float | None = None) -> float:
    """The deadline of the next exchange, in seconds: the request's own (`own`, else
    REQUEST_DEADLINE_S), or what the run has left (RunOver when it has nothing left)."""
    left = remaining()
    if left <= 0:
        raise RunOver("the run's deadline passed")
    return min(own or default_deadline(), left)


def _over(read: int, started: float, deadline: float, cap: int) -> str | None:
    if read > cap:
        return f"the answer was larger than {cap} bytes"
    if time.monotonic() - started > deadline:
        return f"the answer was not complete within {deadline:g} s"
    return None


class Unbounded(httpx.TransportError):
    """An answer larger than the cap, or not complete within its deadline (httpx's side)."""


class UnboundedRequests(requests.exceptions.RequestException):
    """The same, for requests (the contract cases)."""


class _Bounded(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, started: float, deadline: float) -> None:
        self.inner, self.request, self.started, self.deadline = inner, request, started, deadline
        self.cap = MAX_ANSWER_BYTES

    def __iter__(self) -> Iterator[bytes]:
        read = 0
        for chunk in self.inner:
            read += len(chunk)
            problem = _over(read, self.started, self.deadline, self.cap)
            if problem is not None:
                raise Unbounded(problem, request=self.request)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class _AsyncBounded(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request, started: float, deadline: float) -> None:
        self.inner, self.request, self.started, self.deadline = inner, request, started, deadline
        self.cap = MAX_ANSWER_BYTES

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = 0
        async for chunk in self.inner:
            read += len(chunk)
            problem = _over(read, self.started, self.deadline, self.cap)
            if problem is not None:
                raise Unbounded(problem, request=self.request)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class BoundedTransport(httpx.HTTPTransport):
    """httpx's transport, every answer bounded in size and in time (the time between bytes too:
    the read timeout is the whole deadline)."""

    def __init__(self, deadline: float | None = None) -> None:
        super().__init__()
        self.deadline = deadline

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = request_deadline(self.deadline)
        request.extensions["timeout"] = httpx.Timeout(deadline).as_dict()
        started = time.monotonic()
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = bounded = _Bounded(response.stream, request, started, deadline)
        bounded.cap = max_answer_bytes(response.headers.get("content-type"))
        return response


class AsyncBoundedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, deadline: float | None = None) -> None:
        super().__init__()
        self.deadline = deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = request_deadline(self.deadline)
        request.extensions["timeout"] = httpx.Timeout(deadline).as_dict()
        started = time.monotonic()
        response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = bounded = _AsyncBounded(response.stream, request, started, deadline)
        bounded.cap = max_answer_bytes(response.headers.get("content-type"))
        return response


def transport(deadline: float | None = None) -> httpx.HTTPTransport:
    """`deadline`: each exchange's, in seconds (default REQUEST_DEADLINE_S)."""
    return BoundedTransport(deadline)


def async_transport(deadline: float | None = None) -> httpx.AsyncHTTPTransport:
    return AsyncBoundedTransport(deadline)


def client(deadline: float | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client whose every answer is bounded."""
    return httpx.Client(transport=transport(deadline), **kwargs)


class _BoundedRaw:
    """urllib3's response, its body read within the bounds (requests reads through `stream`)."""

    def __init__(self, raw: Any, started: float, deadline: float) -> None:
        self._raw, self._started, self._deadline = raw, started, deadline
        self._read = 0
        self._cap = max_answer_bytes(raw.headers.get("content-type"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _counted(self, chunk: bytes) -> bytes:
        self._read += len(chunk)
        problem = _over(self._read, self._started, self._deadline, self._cap)
        if problem is not None:
            self._raw.close()
            raise UnboundedRequests(problem)
        return chunk

    def stream(self, amt: int = _CHUNK, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            yield self._counted(chunk)

    def read1(self, amt: int = _CHUNK, **kwargs: Any) -> bytes:
        """What arrived (an event stream is read this way, as it comes)."""
        return self._counted(self._raw.read1(amt, **kwargs))

    def read(self, amt: int | None = None, **kwargs: Any) -> bytes:
        return b"".join(self.stream(amt or _CHUNK, kwargs.get("decode_content")))


class _BoundedAdapter(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        deadline = request_deadline()
        kwargs["timeout"] = deadline
        started = time.monotonic()
        response = super().send(request, **{**kwargs, "stream": True})
        response.raw = _BoundedRaw(response.raw, started, deadline)
        return response


def session() -> requests.Session:
    """A requests session whose every answer is bounded (the contract cases go through it)."""
    bounded = requests.Session()
    adapter = _BoundedAdapter()
    bounded.mount("http://", adapter)
    bounded.mount("https://", adapter)
    return bounded
