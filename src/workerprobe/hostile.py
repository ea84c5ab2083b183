"""A hostile HTTP server, for the project's own tests and chaos runs: what a target or an upstream
nobody controls may send. Every request, whatever its path, gets the behaviour of `--mode`:

    huge-body         200 JSON with `Content-Length: 10000000000`, sent as fast as it is read
    endless-chunked   200 JSON, chunked, never ending
    huge-headers      200 whose header lines never end
    drip              200 JSON, one byte a second
    endless-stream    200 text/event-stream of chat chunks, never ending (and no [DONE])
    drip-stream       200 text/event-stream, one byte a second
    invalid-json      200 `application/json` that is not JSON
    lying-type        200 `text/event-stream` whose body is a JSON object
    redirect          307 to another port (`--redirect-to`)
    html-error        502 with an HTML page (a proxy's, not the upstream's envelope)
    many-models       200 a model list of 10,000 entries (a real JSON answer, only large)
    endless-chat      a small model list on /v1/models (a pre-flight passes), and an endless event
                      stream on every other path

    python -m workerprobe.hostile --mode drip --host 127.0.0.1 --port 9999

Loopback only: it serves what it is told to the host it binds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

import orjson

__all__ = ["MODES", "handler", "main"]

_HEAD_LIMIT = 64 * 1024
_CHUNK = b"x" * 65536
_EVENT = b'data: {"id":"chatcmpl-h","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"go on "},"finish_reason":null}]}\n\n'  # noqa: E501

Writer = asyncio.StreamWriter
Mode = Callable[[Writer, argparse.Namespace], Awaitable[None]]


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode("latin-1")


async def _forever(writer: Writer, piece: bytes, pause: float = 0.0) -> None:
    while True:
        writer.write(piece)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)


async def huge_body(writer: Writer, args: argparse.Namespace) -> None:
    writer.write(_head("200 OK", {"Content-Type": "application/json", "Content-Length": "10000000000"}))
    writer.write(b'{"data": "')
    await _forever(writer, _CHUNK)


async def endless_chunked(writer: Writer, args: argparse.Namespace) -> None:
    writer.write(_head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
    await _forever(writer, b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK))


async def huge_headers(writer: Writer, args: argparse.Namespace) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    await _forever(writer, b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(64)))


async def drip(writer: Writer, args: argparse.Namespace) -> None:
    writer.write(_head("200 OK", {"Content-Type": "application/json", "Content-Length": "1000000"}))
    await _forever(writer, b" ", pause=1.0)


async def endless_stream(writer: Writer, args: argparse.Namespace) -> None:
    writer.write(_head("200 OK", {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}))
    burst = _EVENT * 64
    await _forever(writer, b"%x\r\n%s\r\n" % (len(burst), burst))


async def drip_stream(writer: Writer, args: argparse.Namespace) -> None:
    writer.write(_head("200 OK", {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}))
    while True:
        for byte in _EVENT:
            writer.write(b"1\r\n%c\r\n" % byte)
            await writer.drain()
            await asyncio.sleep(1.0)


async def _whole(writer: Writer, status: str, content_type: str, body: bytes) -> None:
    writer.write(_head(status, {"Content-Type": content_type, "Content-Length": str(len(body))}) + body)
    await writer.drain()


async def invalid_json(writer: Writer, args: argparse.Namespace) -> None:
    await _whole(writer, "200 OK", "application/json", b"{this is not json")


async def lying_type(writer: Writer, args: argparse.Namespace) -> None:
    await _whole(writer, "200 OK", "text/event-stream", b'{"object": "chat.completion", "choices": []}')


async def redirect(writer: Writer, args: argparse.Namespace) -> None:
    location = f"http://127.0.0.1:{args.redirect_to}/v1/models"
    writer.write(_head("307 Temporary Redirect", {"Location": location, "Content-Length": "0"}))
    await writer.drain()


async def html_error(writer: Writer, args: argparse.Namespace) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>" + b"<p>" * 200
    await _whole(writer, "502 Bad Gateway", "text/html", page + b"</body></html>")


async def many_models(writer: Writer, args: argparse.Namespace) -> None:
    data = [{"id": f"model-{i}", "object": "model", "created": 1, "owned_by": "hostile"} for i in range(10_000)]
    await _whole(writer, "200 OK", "application/json", orjson.dumps({"object": "list", "data": data}))


async def endless_chat(writer: Writer, args: argparse.Namespace) -> None:
    if args.path.endswith("/models"):
        data = [{"id": "m", "object": "model", "created": 1, "owned_by": "hostile"}]
        await _whole(writer, "200 OK", "application/json", orjson.dumps({"object": "list", "data": data}))
        return
    await endless_stream(writer, args)


MODES: dict[str, Mode] = {
    "huge-body": huge_body,
    "endless-chunked": endless_chunked,
    "huge-headers": huge_headers,
    "drip": drip,
    "endless-stream": endless_stream,
    "drip-stream": drip_stream,
    "invalid-json": invalid_json,
    "lying-type": lying_type,
    "redirect": redirect,
    "html-error": html_error,
    "many-models": many_models,
    "endless-chat": endless_chat,
}


async def _request(reader: asyncio.StreamReader) -> str | None:
    """Read one request (its head, and its body by Content-Length): its path (None: none came)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    while length > 0:
        piece = await reader.read(min(length, 65536))
        if not piece:
            return None
        length -= len(piece)
    return path.split("?", 1)[0]


def handler(mode: Mode, args: argparse.Namespace) -> Callable[[asyncio.StreamReader, Writer], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: Writer) -> None:
        try:
            path = await _request(reader)
            if path is not None:
                await mode(writer, argparse.Namespace(**{**vars(args), "path": path}))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return handle


async def _serve(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(handler(MODES[args.mode], args), args.host, args.port, limit=_HEAD_LIMIT)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redirect-to", type=int, default=9, help="the port `redirect` sends clients to")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
