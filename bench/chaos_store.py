"""Chaos runs of bench/chaos.py on the gateway's stores: kill -9 under writers (SQLite and Redis),
a Redis outage, two replicas and a poller, a held SQLite lock. Loopback only, bounded in time."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from workerprobe.catalogue import load as load_catalogue
from workerprobe.procs import Server, free_port, gateway_env, stop, wait_listening

KEY = "sk-chaos"
TOKEN = "chaos-token"
MODEL = load_catalogue().default("text-generation").name
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def gateway_process(env: dict[str, str], port: int | None = None, nofile: int | None = None) -> Iterator[str]:
    """A gateway as a process this bench may kill -9 (its base URL)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "workerprobe", "gateway", "--port", str(port)]
    if nofile:
        argv = ["prlimit", f"--nofile={nofile}:{nofile}", *argv]
    process = subprocess.Popen(argv, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, 20, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            stop(process)


def _kill9(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            os.kill(conn.pid, signal.SIGKILL)


async def _writers(
    urls: list[str], thread: str, seconds: float, n: int = 32, acked_at: list[float] | None = None
) -> tuple[set[str], dict[str, int]]:
    """`n` writers appending messages through `urls` for `seconds`: acknowledged ids, answers by
    kind (and, into `acked_at`, when each acknowledgement came)."""
    acked: set[str] = set()
    kinds: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=urls[i % len(urls)], headers=AUTH, timeout=10) as http:
            while time.monotonic() < deadline:
                try:
                    r = await http.post(f"/v1/threads/{thread}/messages", json={"role": "user", "content": f"w{i}"})
                except httpx.HTTPError:
                    kinds["connection error"] = kinds.get("connection error", 0) + 1
                    await asyncio.sleep(0.05)
                    continue
                kinds[_kind(r)] = kinds.get(_kind(r), 0) + 1
                if r.status_code == 200:
                    acked.add(r.json()["id"])
                    if acked_at is not None:
                        acked_at.append(time.monotonic())

    await asyncio.gather(*(one(i) for i in range(n)))
    return acked, kinds


def _kind(r: httpx.Response) -> str:
    try:
        error = r.json().get("error")
    except ValueError:
        return f"{r.status_code} outside the envelope"
    if r.status_code >= 400 and not (isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)):
        return f"{r.status_code} outside the envelope"
    return str(r.status_code)


def _all_messages(url: str, thread: str) -> set[str]:
    seen: set[str] = set()
    after = None
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        while True:
            params = {"limit": 100, "order": "asc", **({"after": after} if after else {})}
            page = http.get(f"/v1/threads/{thread}/messages", params=params).json()
            seen |= {m["id"] for m in page["data"]}
            if not page["has_more"]:
                return seen
            after = page["last_id"]


def _thread(url: str) -> str:
    return str(httpx.post(f"{url}/v1/threads", json={}, headers=AUTH, timeout=30).json()["id"])


def kill9(emulator: Server, store: dict[str, str], seconds: float) -> dict[str, Any]:
    env = gateway_env(emulator.url, api_key=KEY, token=TOKEN, account="chaos", **store)
    port = free_port()
    with gateway_process(env, port) as url:
        thread = _thread(url)
        timer = threading.Timer(seconds / 2, _kill9, (url,))
        timer.start()
        acked, kinds = asyncio.run(_writers([url], thread, seconds))
        timer.join()
    with gateway_process(env, port) as url:
        stored = _all_messages(url, thread)
    return {"acknowledged": len(acked), "lost": len(acked - stored), "answers": kinds}


def _redis_argv(port: int, folder: str) -> list[str]:
    return [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--dir", folder,
    ]  # fmt: skip


def redis_outage(emulator: Server, seconds: float) -> dict[str, Any]:
    """Redis (appendonly, fsync always) killed -9 a quarter into the run, restarted a quarter later."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="chaos-redis-")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    servers = [subprocess.Popen(_redis_argv(port, folder), **quiet)]  # type: ignore[call-overload]
    try:
        wait_listening("127.0.0.1", port, 10, servers[0])
        env = gateway_env(emulator.url, api_key=KEY, token=TOKEN, redis_url=f"redis://127.0.0.1:{port}/0")
        with gateway_process(env) as url:
            thread = _thread(url)
            restarted: dict[str, float] = {}

            def outage() -> None:
                time.sleep(seconds / 4)
                servers[0].kill()
                servers[0].wait()
                time.sleep(seconds / 4)
                servers.append(subprocess.Popen(_redis_argv(port, folder), **quiet))  # type: ignore[call-overload]
                wait_listening("127.0.0.1", port, 10, servers[-1])
                restarted["at"] = time.monotonic()

            chaos = threading.Thread(target=outage)
            chaos.start()
            acked_at: list[float] = []
            acked, kinds = asyncio.run(_writers([url], thread, seconds, acked_at=acked_at))
            chaos.join()
            after = [t for t in acked_at if t >= restarted.get("at", float("inf"))]
            recovered = round(min(after) - restarted["at"], 3) if after else None
            stored = _all_messages(url, thread)
    finally:
        for server in servers:
            if server.poll() is None:
                stop(server)
    outside = sum(v for k, v in kinds.items() if k not in ("200", "503", "connection error"))
    return {
        "answers": kinds,
        "outside_the_envelope_or_unexpected": outside,
        "recovered_s_after_restart": recovered,
        "acknowledged_lost": len(acked - stored),
    }


def replicas_poller(emulator: Server, seconds: float) -> dict[str, Any]:
    prefix = f"wp-chaos-{uuid.uuid4().hex}:"
    env = gateway_env(emulator.url, api_key=KEY, token=TOKEN, redis_url="redis://127.0.0.1:6379/0", redis_prefix=prefix)
    with gateway_process(env) as one, gateway_process(env) as two:
        thread = _thread(one)
        seen: list[str] = []
        done = threading.Event()

        def poll() -> None:
            after = None
            with httpx.Client(base_url=one, headers=AUTH, timeout=30) as http:
                while True:
                    finishing = done.is_set()
                    params = {"limit": 100, "order": "asc", **({"after": after} if after else {})}
                    page = http.get(f"/v1/threads/{thread}/messages", params=params).json()
                    seen.extend(m["id"] for m in page["data"])
                    if page["data"]:
                        after = page["last_id"]
                    if finishing and not page["has_more"]:
                        return

        poller = threading.Thread(target=poll)
        poller.start()
        acked, kinds = asyncio.run(_writers([one, two], thread, seconds))
        done.set()
        poller.join()
        stored = _all_messages(two, thread)
    return {"written": len(acked), "stored": len(stored), "polled": len(set(seen)), "missed": len(stored - set(seen))}


def sqlite_lock(emulator: Server) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="chaos-sqlite-")
    database = f"{folder}/gateway.sqlite3"
    env = gateway_env(emulator.url, api_key=KEY, token=TOKEN, database=database, store_busy_timeout_s="2")
    with gateway_process(env) as url:
        thread = _thread(url)
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        answers: list[str] = []

        def write() -> None:
            r = httpx.post(
                f"{url}/v1/threads/{thread}/messages", json={"role": "user", "content": "x"}, headers=AUTH, timeout=30
            )
            answers.append(_kind(r))

        writers = [threading.Thread(target=write) for _ in range(4)]
        for w in writers:
            w.start()
        latencies = []
        unanswered = 0
        with httpx.Client(base_url=url, timeout=1) as http:
            while any(w.is_alive() for w in writers):
                started = time.perf_counter()
                try:
                    http.get("/health")
                except httpx.HTTPError:
                    unanswered += 1
                latencies.append(time.perf_counter() - started)
        for w in writers:
            w.join()
        holder.execute("ROLLBACK")
        holder.close()
    latencies.sort()
    return {
        "health_probes": len(latencies),
        "health_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "health_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "health_unanswered_within_1s": unanswered,
        "writes": answers,
    }
