"""Closed-loop HTTP load on loopback for the benchmark scripts (aiohttp, one process)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass

import aiohttp

from workerprobe.sse import Decoder


def pin_self(cpu: int) -> None:
    """Run this process on one core (the servers get the other)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


@dataclass
class Result:
    rps: float
    p50_ms: float
    errors: int
    cpu_us: dict[int, float] | None = None  # CPU time per request of each watched process


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _closed_loop(
    url: str, body: bytes, headers: dict[str, str], seconds: float, concurrency: int
) -> tuple[int, int, list[float]]:
    done = errors = 0
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal done, errors
            while (start := time.perf_counter()) < stop:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                done += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors, latencies


def throughput(
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    concurrency: int,
    warmup: float = 2.0,
    watch: tuple[int, ...] = (),
) -> Result:
    """Requests per second and median latency of `concurrency` closed-loop clients, and the CPU
    time per request of the `watch`ed server processes (steadier than throughput on a busy box)."""
    asyncio.run(_closed_loop(url, body, headers, warmup, concurrency))
    before = {pid: cpu_seconds(pid) for pid in watch}
    done, errors, latencies = asyncio.run(_closed_loop(url, body, headers, seconds, concurrency))
    cpu = {pid: (cpu_seconds(pid) - before[pid]) / done * 1e6 for pid in watch}
    return Result(done / seconds, statistics.median(latencies) * 1000, errors, cpu)


async def _ttfts(url: str, body: bytes, headers: dict[str, str], n: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                decoder = Decoder()
                first = None
                async for chunk in response.content.iter_any():
                    for event in decoder.feed(chunk):
                        if first is None and '"content":"' in event.data and '"content":""' not in event.data:
                            first = time.perf_counter() - start
                        if first is None and '"response":"' in event.data and '"response":""' not in event.data:
                            first = time.perf_counter() - start
                out.append((first or 0.0) * 1000)
    return out


def median_ttft(url: str, body: bytes, headers: dict[str, str], n: int = 300) -> float:
    """Median time to the first content event of `n` sequential streams, in ms."""
    asyncio.run(_ttfts(url, body, headers, 30))
    return statistics.median(asyncio.run(_ttfts(url, body, headers, n)))
