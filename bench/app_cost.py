"""The CPU of the app itself per non-streamed chat completion, without the HTTP server and without
the upstream's network: the gateway's ASGI app (key check, validation, plan, translation both ways,
retry and fallback layers, budgets, metrics) against the thin pass-through's Starlette handler
(bench/thin_passthrough.py), each called in this process with the upstream answering at once.
What bench/gateway_bench.py's CPU per request is made of: the rest is uvicorn and aiohttp, which
both share. Interleaved rounds; CPU time (time.process_time), so a busy machine inflates neither
much.

    .venv/bin/python bench/app_cost.py [--requests 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from workerprobe.catalogue import load as load_catalogue

MODEL = load_catalogue().default("text-generation").name
MESSAGES = [{"role": "user", "content": "Tell me about harbours"}]
BODY = orjson.dumps({"model": MODEL, "messages": MESSAGES, "temperature": 0})
TEXT = "Harbours are sheltered bodies of water."
USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1"),
        (b"authorization", b"Bearer bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


def caller(app: Any) -> Callable[[], Awaitable[int]]:
    async def call() -> int:
        messages = [{"type": "http.request", "body": BODY, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(SCOPE), receive, send)
        return status

    return call


def gateway_app() -> Any:
    from workerprobe.cloudflare.client import WorkersAI
    from workerprobe.gateway.app import create_app
    from workerprobe.settings import GatewaySettings

    async def answered(self: WorkersAI, model: str, body: dict[str, Any], headers: Any = None) -> Any:
        return {"response": TEXT, "usage": USAGE}

    WorkersAI.run = answered  # type: ignore[method-assign]  # the upstream answers at once
    settings = GatewaySettings(
        api_key="bench",
        cf_api_base_url="http://127.0.0.1:9/client/v4",
        cf_account_id="bench",
        cf_api_token="bench",
        database=":memory:",
    )
    return create_app(settings)


def thin_app() -> Any:
    sys.argv = ["thin_passthrough.py", "0", "http://127.0.0.1:9"]
    import uvicorn

    uvicorn.run = lambda *args, **kwargs: None  # import the module without serving it
    import thin_passthrough as thin

    answer = orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
            "usage": USAGE,
        }
    )

    class Answered:
        status = 200
        headers = {"content-type": "application/json"}

        async def __aenter__(self) -> Answered:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def read(self) -> bytes:
            return answer

    class Session:
        async def post(self, *args: Any, **kwargs: Any) -> Answered:
            return Answered()

    thin.session = Session()  # type: ignore[assignment]
    return thin.Starlette(routes=[thin.Route("/v1/chat/completions", thin.chat, methods=["POST"])])


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    gateway = gateway_app()
    calls = {"thin": caller(thin_app()), "gateway": caller(gateway)}
    figures: dict[str, list[float]] = {name: [] for name in calls}
    async with gateway.router.lifespan_context(gateway):
        for name, call in calls.items():  # warm, and check that they answer
            for _ in range(500):
                status = await call()
            if status != 200:
                raise SystemExit(f"{name} answered {status}")
        for _ in range(args.rounds):
            for name, call in calls.items():
                started = time.process_time()
                for _ in range(args.requests):
                    await call()
                figures[name].append((time.process_time() - started) / args.requests * 1e6)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(measure(args))
    print(f"CPU per request of the app alone, µs ({args.rounds} rounds of {args.requests}; median [lowest-highest]):")
    for name, values in figures.items():
        print(f"  {name:<8} {statistics.median(values):6.1f} [{min(values):.1f}-{max(values):.1f}]")
    extra = statistics.median(figures["gateway"]) - statistics.median(figures["thin"])
    print(f"  the gateway's features: {extra:.1f} µs a request more than the thin handler")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
