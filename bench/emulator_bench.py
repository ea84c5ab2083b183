"""Emulator benchmark: is the emulator ever what limits a load test?

(a) Non-streamed generations per second at zero latency (one emulator worker), beside the
    ceiling of a bare Starlette JSON endpoint served the same way (the baseline).
(b) 200 concurrent streams at 50 tokens/s: scheduling error of every token event, measured at
    the client as arrival minus the stream's own schedule (first token + i x 20 ms).

Servers run on core 0, the load generator on core 1. Targets: (a) >= 3,000/s, (b) median < 2 ms.

    .venv/bin/python bench/emulator_bench.py [--seconds 10] [--streams 200] [--tokens 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import aiohttp
import orjson

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.loadgen import pin_self, throughput
from workerprobe.procs import free_port, serve, wait_listening  # noqa: E402
from workerprobe.sse import Decoder  # noqa: E402

MODEL = load_catalogue().default("text-generation").name
PATH = f"/client/v4/accounts/bench/ai/run/{MODEL}"
HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
SHORT = orjson.dumps({"messages": [{"role": "user", "content": "Tell me about harbours"}], "temperature": 0})
LONG = orjson.dumps({"messages": [{"role": "user", "content": "Write a long essay about Rome"}]})  # cut at 256


async def _one_stream(session: aiohttp.ClientSession, url: str, body: bytes, tpot: float) -> list[float]:
    decoder = Decoder()
    arrivals: list[float] = []
    async with session.post(url, data=body, headers=HEADERS) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            now = time.perf_counter()
            for event in decoder.feed(chunk):
                if event.data != "[DONE]" and orjson.loads(event.data).get("response"):
                    arrivals.append(now)
    first = arrivals[0]
    return [abs(t - (first + i * tpot)) * 1000 for i, t in enumerate(arrivals)]


async def _streams(url: str, streams: int, tokens: int, tpot: float) -> list[float]:
    body = orjson.dumps(
        {"prompt": "Write a long essay about Rome", "max_tokens": tokens, "stream": True, "temperature": 0}
    )
    connector = aiohttp.TCPConnector(limit=streams)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        results = await asyncio.gather(*(_one_stream(session, url, body, tpot) for _ in range(streams)))
    return [e for r in results for e in r]


def _baseline_app() -> None:
    """A bare Starlette JSON endpoint, served as the emulator is (uvicorn, uvloop, httptools)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    payload = orjson.dumps({"result": {"response": "hello"}, "success": True, "errors": [], "messages": []})

    async def hello(request: object) -> Response:
        return Response(payload, media_type="application/json")

    app = Starlette(routes=[Route(PATH, hello, methods=["POST"])])
    port = int(sys.argv[sys.argv.index("--baseline-port") + 1])
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


def _baseline(seconds: float, concurrency: int) -> float:
    import subprocess

    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, __file__, "--baseline-port", str(port)])
    try:
        wait_listening("127.0.0.1", port)
        return throughput(f"http://127.0.0.1:{port}{PATH}", SHORT, HEADERS, seconds, concurrency).rps
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    if "--baseline-port" in sys.argv:
        _baseline_app()
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    pin_self(1)
    env = {"CF_API_TOKEN": "bench"}
    print(f"cores: {os.cpu_count()}; servers on core 0, load generator on core 1; one uvicorn worker each")

    with serve(["emulator"], env=env, cpu=0) as server:
        short = throughput(server.url + PATH, SHORT, HEADERS, args.seconds, args.concurrency)
        long = throughput(server.url + PATH, LONG, HEADERS, args.seconds, args.concurrency)
    ceiling = _baseline(args.seconds, args.concurrency)
    print(f"(a) non-streamed generations, zero latency, c={args.concurrency}, {args.seconds:.0f} s:")
    print(f"    emulator          {short.rps:8.0f} req/s   p50 {short.p50_ms:.2f} ms   errors {short.errors}")
    print(f"    emulator, 256 tok {long.rps:8.0f} req/s   p50 {long.p50_ms:.2f} ms   errors {long.errors}")
    print(f"    bare Starlette    {ceiling:8.0f} req/s   (baseline: the same server with no work)")
    verdict = "met" if min(short.rps, long.rps) >= 3000 else "MISSED"
    print(f"    ratio emulator / baseline: {short.rps / ceiling:.2f} (short), {long.rps / ceiling:.2f} (256 tokens)")
    print(f"    target >= 3,000 req/s: {verdict}")

    tpot_ms = 20.0
    env_streams = {**env, "WORKERPROBE_EMULATOR_TPOT_MS": str(tpot_ms)}
    with serve(["emulator"], env=env_streams, cpu=0) as server:
        errors_ms = asyncio.run(_streams(server.url + PATH, args.streams, args.tokens, tpot_ms / 1000))
    errors_ms.sort()
    median = statistics.median(errors_ms)
    p95 = errors_ms[int(len(errors_ms) * 0.95)]
    p99 = errors_ms[int(len(errors_ms) * 0.99)]
    print(f"(b) {args.streams} concurrent streams x {args.tokens} tokens at 50 tokens/s ({len(errors_ms)} events):")
    print(
        f"    scheduling error median {median:.2f} ms   p95 {p95:.2f} ms   p99 {p99:.2f} ms"
        f"   max {errors_ms[-1]:.2f} ms"
    )
    print(f"    target median < 2 ms: {'met' if median < 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
