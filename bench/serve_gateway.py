"""The gateway served by another HTTP server, for bench/gateway_bench.py's choice of server:
uvicorn (what `workerprobe gateway` runs: uvloop, httptools, the project's bounds), granian (Rust,
its own HTTP/1 stack, ASGI over its own event loop bridge) or hypercorn (h11, pure Python). The
app, its settings (from the environment) and the collector's settings are the same for all three.

    python bench/serve_gateway.py {uvicorn,granian,hypercorn} PORT
"""

from __future__ import annotations

import sys

FACTORY = "workerprobe.server:gateway_worker"


def main() -> None:
    server, port = sys.argv[1], int(sys.argv[2])
    if server == "uvicorn":
        from workerprobe.server import gateway_worker, serve_app

        serve_app(gateway_worker(), "127.0.0.1", port)
    elif server == "granian":
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces, Loops

        Granian(
            FACTORY,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=1,
            loop=Loops.uvloop,
            http=HTTPModes.http1,
            log_enabled=False,
            factory=True,
        ).serve()
    elif server == "hypercorn":
        import uvloop
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        from workerprobe.server import gateway_worker

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.loglevel = "WARNING"
        app = gateway_worker()
        uvloop.run(serve(app, config))  # type: ignore[arg-type]
    else:
        raise SystemExit(f"unknown server {server!r}: uvicorn, granian or hypercorn")


if __name__ == "__main__":
    main()
