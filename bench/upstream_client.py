"""The CPU of one upstream call, by HTTP client: the gateway's own (`workerprobe.cloudflare.http1`)
against aiohttp's, the client it replaced (and pyreqwest's, Rust's reqwest, when it is installed:
`pip install pyreqwest`), each making the gateway's call (a POST of a chat body to the emulator's
`/ai/run`, with the gateway's headers, the answer read whole and parsed) from 16 concurrent tasks.

The emulator runs on core 1 and the client on core 0, so a call's CPU is the client's alone (this
process's user and system time per call). Interleaved rounds; the median and the spread.

    .venv/bin/python bench/upstream_client.py [--calls 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.loadgen import pin_self
from workerprobe.procs import serve

MODEL = load_catalogue().default("text-generation").name
BODY = orjson.dumps({"messages": [{"role": "user", "content": "Tell me about harbours"}], "temperature": 0})
HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
CONCURRENCY = 16
OUT = Path(__file__).resolve().parent.parent / "reports" / "bench"

Call = Callable[[], Awaitable[None]]


async def _cpu_per_call(call: Call, calls: int) -> float:
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))  # warm: the connections open
    left = calls
    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / calls * 1e6


async def http1(url: str, calls: int) -> float:
    from yarl import URL

    from workerprobe.cloudflare.http1 import Origin

    origin = Origin(url, HEADERS)
    path = URL(url).raw_path

    async def call() -> None:
        response = await origin.post(path, BODY, {"x-request-id": "bench"})
        orjson.loads(await response.read())
        response.header("retry-after")

    try:
        return await _cpu_per_call(call, calls)
    finally:
        await origin.close()


async def aiohttp_(url: str, calls: int) -> float:
    import aiohttp
    from yarl import URL

    target = URL(url)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:

        async def call() -> None:
            async with session.post(target, data=BODY, headers={"x-request-id": "bench"}) as response:
                orjson.loads(await response.read())
                response.headers.get("retry-after")

        return await _cpu_per_call(call, calls)


async def pyreqwest_(url: str, calls: int) -> float:
    from pyreqwest.client import ClientBuilder

    async with ClientBuilder().default_headers(HEADERS).build() as client:

        async def call() -> None:
            response = await client.post(url).body_bytes(BODY).header("x-request-id", "bench").build().send()
            orjson.loads(bytes(await response.bytes()))
            response.headers.get("retry-after")

        return await _cpu_per_call(call, calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clients: dict[str, Callable[[str, int], Awaitable[float]]] = {"http1": http1, "aiohttp": aiohttp_}
    try:
        import pyreqwest  # noqa: F401

        clients["pyreqwest"] = pyreqwest_
    except ImportError:
        print("pyreqwest is not installed: left out")
    figures: dict[str, list[float]] = {name: [] for name in clients}
    with serve(["emulator"], env={"CF_API_TOKEN": "bench"}, cpu=1) as emulator:
        pin_self(0)
        url = f"{emulator.url}/client/v4/accounts/bench/ai/run/{MODEL}"
        for _ in range(args.rounds):
            for name, client in clients.items():
                figures[name].append(uvloop.run(client(url, args.calls)))
    print(f"CPU per upstream call, µs ({args.rounds} rounds of {args.calls} calls, {CONCURRENCY} concurrent):")
    base = statistics.median(figures["aiohttp"])
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"  {name:<10} {median:6.1f} [{min(values):.1f}-{max(values):.1f}]  x{median / base:.2f} of aiohttp")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "upstream_client.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
