"""One HTTP/1.1 connection of the upstream client (http1.py) as an asyncio protocol: the response
parsed by httptools as it arrives, its head bounded (`MAX_HEAD_BYTES`, `MAX_HEADERS`), its body
held for the reader with the socket paused past a high-water mark; the failure every layer of the
client raises (`HTTPFailure`); and the heap given back after a bounded read (`release_memory`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import socket
from collections import deque

import httptools

__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "Connection", "HTTPFailure", "release_memory"]

_HIGH_WATER = 256 * 1024  # body bytes waiting for the reader before the socket's reading pauses
MAX_HEAD_BYTES = 64 * 1024  # a response's status line and headers (Node's default is 16 KB)
MAX_HEADERS = 100  # header lines of a response (http.client's limit)


_TRIM: dict[str, asyncio.TimerHandle] = {}
_LIBC = ctypes.util.find_library("c")


def release_memory(delay_s: float = 0.5) -> None:
    """Soon (once, however many ask meanwhile), give the heap's free memory back to the system: a
    hostile answer read up to a limit leaves its buffers freed but scattered, and glibc keeps them
    until `malloc_trim` (measured by bench/chaos_hostile.py: the gateway's RSS stays up without)."""
    if _LIBC is None or "trim" in _TRIM:
        return
    loop = asyncio.get_running_loop()

    def trim() -> None:
        _TRIM.pop("trim", None)
        ctypes.CDLL(_LIBC).malloc_trim(0)

    _TRIM["trim"] = loop.call_later(delay_s, trim)


class HTTPFailure(Exception):
    """The exchange failed: no connection, a broken or closed one, a malformed response, or the
    deadline passed (`timed_out`)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _Refused(Exception):
    """Raised in a parser callback to stop parsing an answer already failed."""


class Connection(asyncio.Protocol):
    """One connection and the response being read on it (httptools calls the `on_*` methods)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.deadline = float("inf")
        self._clear()

    def _clear(self) -> None:
        self.status = 0
        self.head_bytes = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.until_eof = False
        self.error: HTTPFailure | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.error is not None:  # given up: nothing more is parsed or kept
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # a callback's refusal is the first error, kept
            self.fail(HTTPFailure(f"malformed response: {exc}"))
            return
        if not self.status:  # the head is not complete: what it has taken so far is bounded
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.fail(HTTPFailure(f"the response's head is larger than {MAX_HEAD_BYTES} bytes"))
                release_memory()

    def eof_received(self) -> bool:
        self.closed = True  # never reused; a body that ends with the connection ends in connection_lost
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        if self.status and self.until_eof:  # a body that ends when the connection does
            self.complete = True
            self.keep_alive = False
            self._wake()
            return
        reason = f": {exc!r}" if exc is not None else ""
        self.fail(HTTPFailure(f"the connection closed before the response ended{reason}"))

    # httptools

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            self.fail(HTTPFailure(f"the response has more than {MAX_HEADERS} header lines"))
            raise _Refused  # stops the parser: nothing more of this response is kept
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (never asked for): the real one follows
            self.headers = []
            return
        self.status = status
        delimited = any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers)
        self.until_eof = not delimited and status not in (204, 304)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.status:  # the end of an interim answer
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self.deadline = float("inf")
        self._wake()

    # the reader's side

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something happens: headers, body, the end, or a failure (then raised)."""
        if self.error is not None:
            raise self.error
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        """The body bytes received so far (and reading resumed, if it was paused)."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def fail(self, error: HTTPFailure) -> None:
        if self.error is None:
            self.error = error
        self.abort()
        self._wake()

    def expire(self, seconds: float) -> None:
        self.fail(HTTPFailure(f"no complete answer within {seconds:g} s", timed_out=True))

    def quiet_socket(self) -> bool:
        """Whether the idle connection's socket has nothing to read: no close, no stray byte."""
        if self.transport is None or self.transport.is_closing():
            return False
        raw = self.transport.get_extra_info("socket")
        if raw is None:
            return True
        peek = socket.socket(fileno=raw.fileno())  # the same socket, asked without reading it
        try:
            peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"" (a close) or a stray byte
            return False
        except BlockingIOError:  # nothing to read: quiet
            return True
        except OSError:
            return False
        finally:
            peek.detach()

    def close(self) -> None:
        """Close after what is written went out (an answer read to its end)."""
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Close at once (an exchange that failed or was given up)."""
        self.closed = True
        self.deadline = float("inf")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
