"""The gateway's upstream HTTP/1.1 client (cloudflare/http1.py) against real servers on loopback:
a TCP server that answers each request with the bytes a test gives it (the framings, failures and
misbehaviours a real upstream can show), uvicorn over TLS, and a body larger than the client
buffers before it pauses the socket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
import trustme
import uvloop

from workerprobe import hostile as hostile_server
from workerprobe.cloudflare.http1 import Origin
from workerprobe.cloudflare.library import LibraryOrigin
from workerprobe.cloudflare.wire import _HIGH_WATER, MAX_HEAD_BYTES, MAX_HEADERS, HTTPFailure

LIMIT = 64 * 1024 * 1024  # the most a test here reads of one answer

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> the answer (None: say nothing)
MADE: list[Origin] = []


class Tracked(Origin):
    """An origin that the `scripted` fixture closes at the end of the test."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        MADE.append(self)


class Scripted:
    """A loopback server: each request (head and Content-Length body) gets `answer(request)`, then
    the connection closes if `close_after` is set. It counts connections and keeps the requests."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., asyncio.Future[tuple[Scripted, str]]]]:
    servers: list[asyncio.Server] = []
    scripts: list[Scripted] = []

    async def start(answer: Answer, close_after: bool = False) -> tuple[Scripted, str]:
        script = Scripted(answer, close_after)
        scripts.append(script)
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return script, f"http://127.0.0.1:{port}"

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
    while MADE:
        await MADE.pop().close()
    for script in scripts:
        for writer in script.writers:
            writer.close()
    await asyncio.sleep(0)


def fixed(status: int, body: bytes, *headers: str) -> Answer:
    lines = "".join(f"{h}\r\n" for h in headers)
    return lambda _: f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{lines}\r\n".encode() + body


async def test_a_pooled_connection_serves_one_request_after_another(scripted) -> None:
    script, url = await scripted(fixed(200, b'{"ok":true}', "Retry-After: 7"))
    origin = Tracked(url, {"Authorization": "Bearer t"})
    for _ in range(5):
        response = await origin.post("/a/run/%40cf%2Fm", b"{}", {"x-request-id": "r1"})
        assert (response.status, response.header("retry-after")) == (200, "7")
        assert await response.read(LIMIT) == b'{"ok":true}'
    assert script.connections == 1
    request = script.requests[0]
    assert request.startswith(b"POST /a/run/%40cf%2Fm HTTP/1.1\r\n")
    for line in (b"Host: 127.0.0.1:", b"Authorization: Bearer t", b"x-request-id: r1", b"Content-Length: 2"):
        assert line in request
    await origin.close()


async def test_concurrent_requests_use_a_connection_each_then_share_the_pool(scripted) -> None:
    script, url = await scripted(fixed(200, b"x"))
    origin = Tracked(url)

    async def one() -> bytes:
        return await (await origin.post("/", b"")).read(LIMIT)

    assert await asyncio.gather(*(one() for _ in range(8))) == [b"x"] * 8
    assert script.connections == 8
    assert await asyncio.gather(*(one() for _ in range(8))) == [b"x"] * 8
    assert script.connections == 8  # all eight came back to the pool
    await origin.close()


async def test_chunked_and_until_close_bodies_are_read_whole(scripted) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    script, url = await scripted(lambda _: chunked)
    origin = Tracked(url)
    assert await (await origin.post("/", b"")).read(LIMIT) == b"hello world"
    assert await (await origin.post("/", b"")).read(LIMIT) == b"hello world"
    assert script.connections == 1
    # No length and no chunks: the body ends when the server closes, and the connection is not reused.
    script, url = await scripted(lambda _: b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close_after=True)
    origin = Tracked(url)
    assert await (await origin.post("/", b"")).read(LIMIT) == b"until the end"
    assert await (await origin.post("/", b"")).read(LIMIT) == b"until the end"
    assert script.connections == 2


async def test_connection_close_and_an_interim_answer(scripted) -> None:
    script, url = await scripted(fixed(503, b"busy", "Connection: close"), close_after=True)
    origin = Tracked(url)
    for _ in range(2):
        response = await origin.post("/", b"")
        assert (response.status, await response.read(LIMIT)) == (503, b"busy")
    assert script.connections == 2  # never reused after `Connection: close`
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"
    script, url = await scripted(lambda _: interim)
    response = await Tracked(url).post("/", b"")
    assert (response.status, await response.read(LIMIT)) == (200, b"real")


async def test_a_stream_arrives_chunk_by_chunk(scripted) -> None:
    release = asyncio.Event()
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        await release.wait()  # the first piece is read before the second is sent
        writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    origin = Tracked(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    response = await origin.post("/", b"")
    assert response.header("content-type") == "text/event-stream"
    async for chunk in response.chunks(LIMIT):
        seen.append(chunk)
        release.set()
    assert seen == [b"first\n", b"second\n"]
    server.close()


async def test_a_body_larger_than_the_buffer_pauses_reading_and_arrives_intact(scripted) -> None:
    body = bytes(range(256)) * (4 * _HIGH_WATER // 256)
    script, url = await scripted(fixed(200, body))
    origin = Tracked(url, timeout_s=5)
    assert await (await origin.post("/", b"")).read(LIMIT) == body
    total = b""
    async for chunk in (await origin.post("/", b"")).chunks(LIMIT):
        total += chunk
        await asyncio.sleep(0)  # a slow reader
    assert total == body
    assert script.connections == 1
    await origin.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed before the response ended"),
        (lambda _: b"NOT HTTP AT ALL\r\n\r\n", "malformed response"),
        (lambda _: b"", "closed before the response ended"),
    ],
    ids=["cut-mid-body", "not-http", "closed-at-once"],
)
async def test_a_broken_answer_is_a_failure_and_its_connection_is_dropped(scripted, answer, message) -> None:
    script, url = await scripted(answer, close_after=True)
    origin = Tracked(url)
    with pytest.raises(HTTPFailure, match=message):
        await (await origin.post("/", b"")).read(LIMIT)
    with pytest.raises(HTTPFailure, match=message):
        await (await origin.post("/", b"")).read(LIMIT)
    assert script.connections == 2


async def test_the_deadline_covers_the_whole_answer_and_the_connection(scripted) -> None:
    script, url = await scripted(lambda _: None)  # never answers
    origin = Tracked(url, timeout_s=0.2)
    with pytest.raises(HTTPFailure, match="within 0.2 s") as raised:
        await origin.post("/", b"")
    assert raised.value.timed_out
    # Headers at once, the body never: the deadline still ends it.
    script, url = await scripted(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    origin = Tracked(url, timeout_s=0.2)
    response = await origin.post("/", b"")
    with pytest.raises(HTTPFailure, match="within 0.2 s"):
        await response.read(LIMIT)
    # Nothing listening: a failure at once, not a hang.
    with pytest.raises(HTTPFailure, match="no connection"):
        await Tracked("http://127.0.0.1:9").post("/", b"")


async def test_an_idle_connection_the_server_closed_is_not_reused(scripted) -> None:
    script, url = await scripted(fixed(200, b"ok"))
    origin = Tracked(url)
    assert await (await origin.post("/", b"")).read(LIMIT) == b"ok"
    for writer in script.writers:  # the server closes its idle connections
        writer.close()
    await asyncio.sleep(0.05)
    assert await (await origin.post("/", b"")).read(LIMIT) == b"ok"
    assert script.connections == 2
    # And one idle past `idle_s` is not reused either, whether or not the server closed it.
    origin = Tracked(url, idle_s=0.05)
    await (await origin.post("/", b"")).read(LIMIT)
    await asyncio.sleep(0.1)
    await (await origin.post("/", b"")).read(LIMIT)
    assert script.connections == 4


@pytest.mark.parametrize("runner", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_close_already_on_the_socket_is_read_before_the_connection_is_reused(runner) -> None:
    """The server (a thread of its own) closes an idle connection, and its close reaches the
    client's socket while the client's event loop is not running: the next call must not write
    its request on that connection (it would fail as if the server had broken the exchange)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def answer(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while connection.recv(65536):  # one request per read (no body), as the client sends it
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                accepted.append(connection)
                threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    async def calls() -> None:
        origin = Origin(f"http://127.0.0.1:{listener.getsockname()[1]}")
        assert await (await origin.post("/", b"")).read(LIMIT) == b"ok"
        origin._idle[-1].idle_since -= 2  # idle for 2 s, as when a server's keep-alive time runs out
        accepted[0].shutdown(socket.SHUT_RDWR)
        time.sleep(0.1)  # the close arrives; the client's loop does not run meanwhile
        assert await (await origin.post("/", b"")).read(LIMIT) == b"ok"
        await origin.close()

    try:
        runner(calls())
    finally:
        listener.close()
    assert len(accepted) == 2


async def test_a_reader_that_gives_up_does_not_return_the_connection(scripted) -> None:
    script, url = await scripted(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    origin = Tracked(url)
    response = await origin.post("/", b"")
    response.close()  # before the body ended: the rest would be read as the next answer
    script.answer = fixed(200, b"next")
    assert await (await origin.post("/", b"")).read(LIMIT) == b"next"
    assert script.connections == 2


async def test_a_cancelled_call_drops_its_connection(scripted) -> None:
    script, url = await scripted(lambda _: None)
    origin = Tracked(url)
    call = asyncio.ensure_future(origin.post("/", b""))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    script.answer = fixed(200, b"fresh")
    assert await (await origin.post("/", b"")).read(LIMIT) == b"fresh"
    assert script.connections == 2


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="CR, LF"):
        Origin("http://127.0.0.1:9", {"x-a": "b\r\nHost: evil"})
    origin = Tracked("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="CR, LF"):
        asyncio.run(origin.post("/", b"", {"x-request-id": "a\nb"}))
    with pytest.raises(ValueError, match="not an http"):
        Origin("ftp://example.com")


async def test_https_with_the_host_name_checked(scripted) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(served)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    assert (
        await (await Tracked(f"https://127.0.0.1:{port}", ssl_context=trusted).post("/", b"")).read(LIMIT) == b"secret"
    )
    with pytest.raises(HTTPFailure, match="no connection"):  # the system's store does not know this CA
        await Tracked(f"https://127.0.0.1:{port}").post("/", b"")
    server.close()


# --- bounded against a hostile origin (workerprobe.hostile, in this test's event loop) ---------


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[str], asyncio.Future[str]]]:
    servers: list[asyncio.Server] = []

    async def start(mode: str) -> str:
        serve = hostile_server.handler(hostile_server.MODES[mode], argparse.Namespace(redirect_to=9))
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
    while MADE:
        await MADE.pop().close()


def _clients(url: str, **kwargs: object) -> list[Origin | LibraryOrigin]:
    """The gateway's own client and aiohttp's behind the same methods (the setting's two choices)."""
    return [Tracked(url, **kwargs), LibraryOrigin(url, **kwargs)]  # type: ignore[arg-type]


async def test_an_endless_head_fails_within_its_bound(hostile) -> None:
    url = await hostile("huge-headers")
    origin = Tracked(url)
    async with asyncio.timeout(30):  # a guard against a hang, not a figure
        # whichever bound the reads meet first (the head's bytes, or its lines: chunking decides)
        with pytest.raises(HTTPFailure, match=f"head is larger than {MAX_HEAD_BYTES}|than {MAX_HEADERS} header lines"):
            await origin.post("/", b"")
    assert not origin._busy and not origin._idle  # the connection is closed, not pooled


async def test_too_many_header_lines_fail(scripted) -> None:
    many = "".join(f"X-{i}: v\r\n" for i in range(MAX_HEADERS + 1))
    _, url = await scripted(lambda _: f"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{many}\r\nok".encode())
    for origin in _clients(url):
        with pytest.raises(HTTPFailure, match="header"):
            await (await origin.post("/", b"")).read(LIMIT)
        await origin.close()


async def test_a_body_over_the_limit_fails_whether_declared_or_not(hostile) -> None:
    declared, endless = await hostile("huge-body"), await hostile("endless-chunked")
    async with asyncio.timeout(30):
        for origin in _clients(declared):
            with pytest.raises(HTTPFailure, match="declares 10000000000 bytes"):
                await (await origin.post("/", b"")).read(1024 * 1024)
            await origin.close()
        for origin in _clients(endless):
            with pytest.raises(HTTPFailure, match="larger than the 1048576 bytes"):
                await (await origin.post("/", b"")).read(1024 * 1024)
            if isinstance(origin, Origin):
                assert not origin._busy and not origin._idle
            await origin.close()


async def test_an_endless_stream_fails_at_its_limit(hostile) -> None:
    url = await hostile("endless-stream")
    async with asyncio.timeout(30):
        for origin in _clients(url):
            received = 0
            with pytest.raises(HTTPFailure, match="larger than the 1048576 bytes"):
                async for chunk in (await origin.post("/", b"")).chunks(1024 * 1024):
                    received += len(chunk)
            assert received <= 1024 * 1024
            await origin.close()


async def test_a_drip_ends_at_the_exchange_deadline(hostile) -> None:
    url = await hostile("drip")
    for origin in _clients(url, timeout_s=0.5):
        with pytest.raises(HTTPFailure) as raised:
            await (await origin.post("/", b"")).read(LIMIT)
        assert raised.value.timed_out
        await origin.close()


async def test_an_address_that_never_answers_gives_way_to_the_next(scripted, monkeypatch) -> None:
    """Happy eyeballs: the name resolves first to an address whose connection never completes
    (a listener whose backlog is full drops the SYN, as a broken IPv6 route does), then to one that
    answers. The second is tried 250 ms later and answers, long before the 10 s connect deadline."""
    _, url = await scripted(fixed(200, b"ok"))
    port = int(url.rsplit(":", 1)[1])
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    filler = []
    for _ in range(3):  # the backlog, full: later SYNs are dropped
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(blackhole.getsockname())
        filler.append(sock)
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    addresses = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", blackhole.getsockname()),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
    ]

    async def resolve(*args: object, **kwargs: object) -> list[tuple[object, ...]]:
        return addresses

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    try:
        origin = Tracked("http://workerprobe.invalid:1", connect_timeout_s=10)
        async with asyncio.timeout(8):  # a guard: without the second attempt it waits 10 s
            assert await (await origin.post("/", b"")).read(LIMIT) == b"ok"
    finally:
        for sock in (*filler, blackhole):
            sock.close()
