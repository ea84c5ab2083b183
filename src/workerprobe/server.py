"""Serving the project's ASGI apps: uvicorn (uvloop, httptools) with the bounds it lacks.

uvicorn 0.54 holds a connection that never finishes its request line and headers for ever (its
only timer is the keep-alive one, armed after a response), and accepts connections until the
process runs out of file descriptors. A server facing the internet needs both bounded, so the
HTTP protocol here adds, per connection:

- a header deadline: the request's line and headers within `header_timeout_s` of the connection
  (or of the previous response, plus the keep-alive time);
- a body deadline: the whole body within `body_timeout_s` of its headers;
- a cap on open connections: past `max_connections` (never more than the file-descriptor limit
  leaves room for), the oldest connection still sending its request (its headers, or its body) is
  closed, so that a flood of half-sent requests, with a valid key or none, can not shut out a
  client that sends its request at once (`/health` keeps answering).

The figures are measured by `bench/chaos.py` (the slow-client attack).
"""

from __future__ import annotations

import asyncio
import gc
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["Bounds", "GuardedHttpTools", "connection_cap", "gateway_worker", "serve_app", "serve_workers"]

_FD_RESERVE = 256  # descriptors kept for the store, the upstream's connections, logs


@dataclass(frozen=True)
class Bounds:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 30.0
    max_connections: int = 4096


def connection_cap(wanted: int) -> int:
    """Raise the soft file-descriptor limit as far as needed and allowed; the connections that fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + _FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = wanted if soft == resource.RLIM_INFINITY else soft - _FD_RESERVE
    return max(16, min(wanted, room))


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and the connection cap.

    A deadline is a number per connection, not a timer: the hot path sets a float, and one sweep a
    second closes the connections past theirs (two timers per request cost the gateway benchmark
    measurable throughput at 16 concurrent requests)."""

    bounds = Bounds()
    cap = 4096
    # Connections still sending a request (its line, headers or body), oldest first (dicts keep
    # order): the ones a new connection past the cap closes.
    _reading: dict[GuardedHttpTools, None] = {}
    _open: set[GuardedHttpTools] = set()
    _sweeper: asyncio.Task[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = float("inf")

    @classmethod
    async def _sweep(cls) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for connection in [c for c in cls._open if c._deadline < now]:
                connection._expired()

    def _expired(self) -> None:
        self._deadline = float("inf")
        GuardedHttpTools._reading.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cls = GuardedHttpTools
        if cls._sweeper is None or cls._sweeper.done():
            cls._sweeper = self.loop.create_task(cls._sweep())
        reading = cls._reading
        if len(self.connections) > self.cap and reading:  # one out for each one in, past the cap
            next(iter(reading))._expired()
        reading[self] = None
        cls._open.add(self)
        self._deadline = self.loop.time() + self.bounds.header_timeout_s

    def connection_lost(self, exc: Exception | None) -> None:
        GuardedHttpTools._reading.pop(self, None)
        GuardedHttpTools._open.discard(self)
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._deadline = self.loop.time() + self.bounds.body_timeout_s
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        GuardedHttpTools._reading.pop(self, None)
        self._deadline = float("inf")
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # the next request's headers, after the keep-alive time
            GuardedHttpTools._reading[self] = None
            self._deadline = self.loop.time() + self.bounds.idle_timeout_s + self.bounds.header_timeout_s


def _prepare(bounds: Bounds) -> None:
    GuardedHttpTools.bounds = bounds
    GuardedHttpTools.cap = connection_cap(bounds.max_connections)
    # Everything loaded so far lives as long as the server: keep the collector from rescanning it,
    # and collect the young generation less often (a server allocates in short bursts).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def gateway_worker() -> object:
    """The gateway app of one worker process of `serve_workers` (its settings from the
    environment, which the parent set)."""
    from workerprobe.gateway import create_app
    from workerprobe.settings import GatewaySettings

    settings = GatewaySettings()
    app = create_app(settings)
    _prepare(
        Bounds(settings.header_timeout_s, settings.body_timeout_s, settings.idle_timeout_s, settings.max_connections)
    )
    return app


def _options(bounds: Bounds) -> dict[str, Any]:
    """uvicorn's settings for the gateway: uvloop, httptools with the bounds, no access log."""
    return {
        "loop": "uvloop",
        "http": GuardedHttpTools,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": int(bounds.idle_timeout_s),
    }


def serve_workers(factory: str, host: str, port: int, workers: int, bounds: Bounds) -> None:
    """Serve the app that `factory` ("module:function") makes in `workers` processes on one
    socket (uvicorn's supervisor: it restarts a worker that dies). Each process makes its own app
    and applies the bounds itself: a spawned process keeps nothing of this one but its
    environment."""
    import uvicorn

    uvicorn.run(factory, factory=True, workers=workers, host=host, port=port, **_options(bounds))


def serve_app(app: object, host: str, port: int, bounds: Bounds | None = None) -> None:
    """Serve an ASGI app with the project's server settings (uvloop, httptools with the bounds
    above, no access log)."""
    import uvicorn

    bounds = bounds or Bounds()
    _prepare(bounds)

    uvicorn.run(app, host=host, port=port, **_options(bounds))  # type: ignore[arg-type]
