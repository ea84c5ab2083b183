"""A keep-alive HTTP/1.1 client for the gateway's one upstream origin (Workers AI's REST API, or
the emulator in its place).

The gateway makes one kind of call: a POST of a JSON body to one origin, its answer read whole or
as a stream. For that, aiohttp's client cost more CPU than all of the gateway's features together
(`bench/upstream_client.py`: aiohttp, pyreqwest and this client against the same emulator). This
one keeps what such a call needs and nothing more:

- a pool of keep-alive connections to the origin (the most recently used first; one idle longer
  than `idle_s`, or whose socket shows a close or a stray byte, is never reused);
- a new connection tries the host's IPv6 and IPv4 addresses in turn (happy eyeballs);
- bounds on what the origin may send: a head of at most `MAX_HEAD_BYTES` and `MAX_HEADERS` lines,
  a body read whole or as a stream up to the limit the caller gives;
- the request line, headers and body written with one system call;
- the response parsed by httptools (the parser uvicorn serves with): Content-Length, chunked, or
  read until the server closes;
- a body read whole (`Response.read`) or chunk by chunk as it arrives (`Response.chunks`), with
  the socket's reading paused while more than `_HIGH_WATER` bytes wait for the reader;
- TLS for https origins (the system's trust store, the host name checked);
- a deadline for each exchange, from the call until the response's last byte (as aiohttp's
  `ClientTimeout.total`), and one for each new connection. An exchange's deadline is a number,
  checked by one sweep per origin (a timer per request cost measurable CPU, as in server.py).

A failure is an `HTTPFailure`: nothing is retried here, since a POST that may have reached the
server is not this layer's to repeat (the gateway's retry layer decides). A connection that failed,
timed out, or was given up before its response ended is closed, never pooled.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import aiohappyeyeballs

from workerprobe.cloudflare.wire import Connection, HTTPFailure, release_memory

_MAX_IDLE = 512  # idle connections kept per origin; more are closed when they come back

__all__ = ["Origin", "Response"]


class Response:
    """An answer whose status and headers have arrived; its body is read with `read` or `chunks`
    (once), or given up with `close`."""

    __slots__ = ("_connection", "_origin", "headers", "status")

    def __init__(self, origin: Origin, connection: Connection) -> None:
        self._origin: Origin | None = origin
        self._connection = connection
        self.status = connection.status
        self.headers = connection.headers

    def header(self, name: str) -> str | None:
        """The last value of a header (`name` in lower case), or None."""
        key = name.encode("latin-1")
        for found, value in reversed(self.headers):
            if found == key:
                return value.decode("latin-1")
        return None

    def _declared_over(self, limit: int) -> None:
        length = self.header("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise HTTPFailure(f"the answer declares {int(length)} bytes, more than the {limit} allowed")

    async def read(self, limit: int) -> bytes:
        """The whole body (HTTPFailure past `limit` bytes, the connection closed and what was read
        of it given back to the system)."""
        connection = self._connection
        parts: list[bytes] = []
        size = 0
        try:
            self._declared_over(limit)
            while not connection.complete:
                if connection.paused:  # a large body: the reader keeps the socket reading
                    parts.append(connection.take())
                    size += len(parts[-1])
                if size + connection.buffered > limit:
                    parts.clear()
                    connection.abort()
                    connection.chunks.clear()
                    release_memory()
                    raise HTTPFailure(f"the answer is larger than the {limit} bytes allowed")
                await connection.wait()
            if not parts:
                body = connection.take()
            else:
                parts.append(connection.take())
                body = b"".join(parts)
            if len(body) > limit:
                raise HTTPFailure(f"the answer is larger than the {limit} bytes allowed")
            return body
        finally:
            self.close()

    async def chunks(self, limit: int) -> AsyncIterator[bytes]:
        """The body as it arrives, in the pieces the socket delivered (HTTPFailure past `limit`
        bytes in all, the connection closed)."""
        connection = self._connection
        size = 0
        try:
            self._declared_over(limit)
            while True:
                if connection.chunks:
                    chunk = connection.take()
                    size += len(chunk)
                    if size > limit:
                        connection.abort()
                        release_memory()
                        raise HTTPFailure(f"the answer is larger than the {limit} bytes allowed")
                    yield chunk
                elif connection.complete:
                    return
                else:
                    await connection.wait()
        finally:
            self.close()

    def close(self) -> None:
        """Done with the answer: its connection goes back to the pool when the answer was read to
        its end on a connection that stays open, else it is closed."""
        origin, self._origin = self._origin, None
        if origin is not None:
            origin._release(self._connection)


class Origin:
    """POST requests to one origin (the scheme, host and port of `base_url`; a request names its
    whole path), on a pool of keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 10.0,
        idle_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        # aiohttp's keep-alive time. A server that closes an idle connection sooner (uvicorn after
        # 5 s) is seen closing it (`connection_lost`) before the connection is taken again; a
        # request that races the close fails as a lost connection, which the retry layer retries.
        # Shorter would cost a TLS handshake to Workers AI after every pause of a few seconds.
        self.idle_s = idle_s
        default_port = self.port == (443 if self.ssl else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        fixed = {
            "Host": host if default_port else f"{host}:{self.port}",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        self._fixed = _header_lines(fixed)
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()  # connections with an exchange under way
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
        """Send `body` to `path` (from the root, percent-encoded); the answer once its status and
        headers arrived. The deadline runs until the answer's last byte."""
        if self._closed:
            raise HTTPFailure("the client is closed")
        extra = _header_lines(headers) if headers else ""
        head = f"POST {path} HTTP/1.1\r\n{self._fixed}{extra}Content-Length: {len(body)}\r\n\r\n"
        connection = await self._connection()
        connection.deadline = connection.loop.time() + self.timeout_s
        self._busy.add(connection)
        if self._sweeper is None:
            self._sweeper = connection.loop.create_task(self._sweep())
        try:
            connection.transport.write(head.encode("latin-1") + body)  # type: ignore[union-attr]
            while not connection.status:
                await connection.wait()
        except BaseException:
            self._busy.discard(connection)
            connection.abort()
            raise
        return Response(self, connection)

    async def _connection(self) -> Connection:
        idle = self._idle
        loop = asyncio.get_running_loop()
        while idle:
            connection = idle.pop()
            quiet = loop.time() - connection.idle_since
            # The server may have closed it a moment ago, its close not yet read by the loop: the
            # socket is asked (a close, or any byte, on an idle connection: it is not reused).
            if not connection.closed and quiet < self.idle_s and connection.quiet_socket():
                return connection
            connection.abort()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                # IPv6 and IPv4 addresses tried in turn, 250 ms apart (happy eyeballs, RFC 8305),
                # by aiohttp's library: uvloop's create_connection has no such option.
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25, interleave=1)
                _, protocol = await loop.create_connection(
                    lambda: Connection(loop),
                    sock=sock,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise HTTPFailure(
                f"no connection to {self.host}:{self.port} within {self.connect_timeout_s:g} s", timed_out=True
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise HTTPFailure(f"no connection to {self.host}:{self.port}: {exc!r}") from None
        return protocol

    async def _sweep(self) -> None:
        """Fail the exchanges past their deadline (checked a few times per `timeout_s`, at most
        once a second)."""
        loop = asyncio.get_running_loop()
        every = min(1.0, self.timeout_s / 4)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for connection in [c for c in self._busy if c.deadline < now]:
                self._busy.discard(connection)
                connection.expire(self.timeout_s)

    def _release(self, connection: Connection) -> None:
        self._busy.discard(connection)
        if (
            connection.complete
            and connection.keep_alive
            and not connection.closed
            and not self._closed
            and len(self._idle) < _MAX_IDLE
        ):
            connection._clear()
            connection.idle_since = connection.loop.time()
            self._idle.append(connection)
        elif connection.complete:
            connection.close()
        else:  # the rest of the answer would be read as the next one's
            connection.abort()

    async def close(self) -> None:
        """Close the idle connections; those still in use close when their answer is done."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _header_lines(headers: Mapping[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}"
        if "\r" in line or "\n" in line or "\0" in line:  # a header of its own, smuggled in
            raise ValueError(f"header {name!r}: CR, LF and NUL are not allowed in a header")
        lines.append(f"{line}\r\n")
    return "".join(lines)
