"""Chaos and attack runs against real gateway processes, loopback only, bounded in time:

    kill9-sqlite / kill9-redis  kill -9 of the gateway under 32 writers, restarted on the same store:
                                acknowledged messages lost (must be 0)
    redis-outage                Redis killed and restarted mid-run under writers: answers outside the
                                envelope or other than 200/503 (must be 0), recovery without a restart
    replicas-poller             two replicas on Redis, 32 writers on both, a poller paging `after` the
                                last id it saw through one of them: messages it missed (must be 0)
    sqlite-lock                 another process holds the write lock: /health p99 meanwhile, and the
                                writes' answers (503 in the envelope)
    slow-clients                1,100 half-sent requests without a key, the gateway at 1,024 open files:
                                /health answered (must be all)
    chunked-uploads             four parallel 100 MB chunked uploads: the gateway's peak RSS (< 150 MB)
    malformed-corpus            raw-socket requests over every endpoint (malformed JSON, wrong types,
                                nesting, huge numbers and bodies, unknown and foreign ids, bad auth):
                                answers outside the envelope, and 5xx (must be 0)

    .venv/bin/python bench/chaos.py [--short] [--out reports/chaos.json]

Exit 1 when a must-be-0 figure is not 0, so CI can run the short form.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from workerprobe.catalogue import load as load_catalogue
from workerprobe.procs import Server, free_port, gateway_env, serve, stop, wait_listening

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


def slow_clients(emulator: Server, connections: int) -> dict[str, Any]:
    env = gateway_env(emulator.url, api_key=KEY, token=TOKEN)
    with gateway_process(env, nofile=1024) as url:
        port = int(url.rsplit(":", 1)[1])
        held = []
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            held.append(sock)
        answered, latencies = 0, []
        for _ in range(50):
            started = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
                    probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    answered += probe.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                pass
            latencies.append(time.perf_counter() - started)
        open_still = 0
        for sock in held:
            sock.setblocking(False)
            try:
                open_still += sock.recv(1) != b""
            except BlockingIOError:
                open_still += 1
            except OSError:
                pass
            sock.close()
    latencies.sort()
    return {
        "half_sent_requests": connections,
        "health_answered": f"{answered}/50",
        "health_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "attackers_still_open": open_still,
        "unanswered": 50 - answered,
    }


def chunked_uploads(emulator: Server, megabytes: int) -> dict[str, Any]:
    env = gateway_env(emulator.url, api_key=KEY, token=TOKEN)
    with gateway_process(env) as url:
        port = int(url.rsplit(":", 1)[1])
        pid = next(
            c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == "LISTEN"
        )
        proc = psutil.Process(pid)
        base = proc.memory_info().rss
        peak, stop_watch = [base], threading.Event()

        def watch() -> None:
            while not stop_watch.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.005)

        statuses: list[bytes] = []

        def upload() -> None:
            chunk = b"a" * 65536
            frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                    + KEY.encode()
                    + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                try:
                    for _ in range(megabytes * 16):
                        sock.sendall(frame)
                except OSError:
                    pass
                try:
                    statuses.append(sock.recv(64).split(b"\r\n")[0])
                except OSError:
                    statuses.append(b"no answer")

        watcher = threading.Thread(target=watch)
        watcher.start()
        uploads = [threading.Thread(target=upload) for _ in range(4)]
        for u in uploads:
            u.start()
        for u in uploads:
            u.join()
        stop_watch.set()
        watcher.join()
    return {
        "uploads": f"4 x {megabytes} MB chunked",
        "rss_before_mb": round(base / 1e6, 1),
        "rss_peak_mb": round(peak[0] / 1e6, 1),
        "answers": sorted({s.decode() for s in statuses}),
    }


def _corpus(ids: dict[str, str], foreign: dict[str, str], count: int) -> list[tuple[str, bytes]]:
    """Malformed requests over every endpoint: (label, raw HTTP bytes)."""
    a, t, m, r = ids["assistant"], ids["thread"], ids["message"], ids["run"]
    fa, ft = foreign["assistant"], foreign["thread"]
    posts = [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/assistants",
        f"/v1/assistants/{a}",
        "/v1/threads",
        "/v1/threads/runs",
        f"/v1/threads/{t}",
        f"/v1/threads/{t}/messages",
        f"/v1/threads/{t}/messages/{m}",
        f"/v1/threads/{t}/runs",
        f"/v1/threads/{t}/runs/{r}",
        f"/v1/threads/{t}/runs/{r}/cancel",
    ]
    gets = [
        "/v1/models",
        f"/v1/models/{MODEL}",
        "/v1/assistants",
        f"/v1/assistants/{a}",
        f"/v1/threads/{t}",
        f"/v1/threads/{t}/messages",
        f"/v1/threads/{t}/messages/{m}",
        f"/v1/threads/{t}/runs",
        f"/v1/threads/{t}/runs/{r}",
        "/models/search?query=json",
        "/health",
        "/ready",
    ]
    unknown = [
        "/v1/assistants/asst_nope",
        "/v1/threads/thread_nope",
        f"/v1/threads/{t}/messages/msg_nope",
        f"/v1/threads/{t}/runs/run_nope",
        "/v1/threads/thread_nope/messages",
        "/v1/models/@cf/no/such",
        f"/v1/assistants/{fa}",
        f"/v1/threads/{ft}",
        f"/v1/threads/{ft}/messages",
        f"/v1/threads/{ft}/runs",
    ]
    bodies: list[tuple[str, bytes]] = [
        ("malformed json", b"{oops"),
        ("truncated json", b'{"model": "x", "messages": ['),
        ("empty", b""),
        ("array", b"[1, 2]"),
        ("null", b"null"),
        ("number", b"42"),
        ("string", b'"text"'),
        ("invalid utf-8", b'{"model": "\xff\xfe"}'),
        ("nul bytes", b'{"model": "a\x00b"}'),
        ("deep nesting", b'{"metadata": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}"),
        ("deep arrays", b'{"tools": ' + b"[" * 900 + b"]" * 900 + b"}"),
        (
            "deep response_format",
            b'{"model": "' + MODEL.encode() + b'", "response_format": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}",
        ),
        ("deep tool_resources", b'{"tool_resources": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}"),
        ("huge number", b'{"model": "' + MODEL.encode() + b'", "max_tokens": 1e29, "messages": []}'),
        (
            "big integer",
            b'{"max_prompt_tokens": 123456789012345678901234567890, "assistant_id": "' + a.encode() + b'"}',
        ),
        ("infinity", b'{"temperature": 1e400}'),
        ("NaN", b'{"temperature": NaN}'),
        ("wrong types", b'{"model": 5, "messages": "no", "temperature": "hot", "stream": "yes"}'),
        ("booleans for numbers", b'{"model": "' + MODEL.encode() + b'", "messages": [], "max_tokens": true}'),
        ("null fields", b'{"model": null, "messages": null, "metadata": null, "tools": null}'),
        ("huge metadata", b'{"metadata": {' + b",".join(b'"k%d": "v"' % i for i in range(500)) + b"}}"),
        ("long string", b'{"name": "' + b"x" * 300_000 + b'"}'),
        ("duplicate keys", b'{"model": "a", "model": "b"}'),
        ("unicode", '{"model": "ü\u2028\U0001f600", "name": "\ud800"}'.encode("utf-8", "surrogatepass")),
        ("tools garbage", b'{"model": "' + MODEL.encode() + b'", "tools": [{"type": "function", "function": 7}]}'),
        ("messages garbage", b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "alien", "content": 1}]}'),
    ]
    out: list[tuple[str, bytes]] = []
    auth = f"Authorization: Bearer {KEY}\r\n".encode()

    def request(method: str, path: str, body: bytes | None, headers: bytes = auth) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + headers
        if body is None:
            return head + b"\r\n"
        return head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    for path in posts:
        for label, body in bodies:
            out.append((f"POST {path}: {label}", request("POST", path, body)))
        out.append(
            (
                f"POST {path}: declared 50 MB",
                request("POST", path, None).replace(b"\r\n\r\n", b"\r\nContent-Length: 50000000\r\n\r\n"),
            )
        )
        out.append(
            (f"POST {path}: text/plain", request("POST", path, b"hello").replace(b"application/json", b"text/plain"))
        )
    for path in gets + unknown:
        for label, query in (
            ("", ""),
            ("bad limit", "?limit=abc"),
            ("limit 0", "?limit=0"),
            ("order", "?order=up"),
            ("cursor", "?after=nope&before=%ff"),
            ("huge limit", "?limit=99999999999999999999"),
        ):
            out.append((f"GET {path}{' ' + label if label else ''}", request("GET", path + query, None)))
        out.append((f"DELETE {path}", request("DELETE", path, None)))
        out.append((f"PUT {path}", request("PUT", path, b"{}")))
        out.append((f"PATCH {path}", request("PATCH", path, b"{}")))
    for path in unknown:
        out.append((f"POST {path}", request("POST", path, b'{"metadata": {"a": "b"}}')))
    rng = random.Random(7)
    while len(out) < count - 60:
        path = rng.choice(posts)
        label, body = rng.choice(bodies)
        cut = body[: rng.randrange(0, max(1, len(body)))]
        out.append((f"POST {path}: cut {label}", request("POST", path, cut)))
    # Authentication failures last (the gateway limits them per address).
    for path in posts[:10] + gets[:10]:
        method = "POST" if path in posts else "GET"
        body = b"{}" if method == "POST" else None
        out.append((f"{method} {path}: no key", request(method, path, body, b"")))
        out.append((f"{method} {path}: wrong key", request(method, path, body, b"Authorization: Bearer sk-wrong\r\n")))
        out.append((f"{method} {path}: basic auth", request(method, path, body, b"Authorization: Basic YTpi\r\n")))
    return out


def _send(port: int, raw: bytes) -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(raw)
        except OSError:
            pass
        data = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.lower().split(b"\r\n")
                            if line.startswith(b"content-length:")
                        ),
                        None,
                    )
                    if length is not None and len(rest) >= length:
                        break
        except OSError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    content_type = next((line for line in head.lower().split(b"\r\n") if line.startswith(b"content-type:")), b"")
    return status, content_type, body


def malformed_corpus(emulator: Server, count: int) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="chaos-corpus-")
    env = gateway_env(emulator.url, api_key=KEY, token=TOKEN, database=f"{folder}/gateway.sqlite3")
    with gateway_process(env) as url:
        port = int(url.rsplit(":", 1)[1])
        with httpx.Client(base_url=f"{url}/v1", headers=AUTH, timeout=30) as http:
            assistant = http.post("/assistants", json={"model": MODEL}).json()["id"]
            thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]
            message = http.get(f"/threads/{thread}/messages").json()["data"][0]["id"]
            run = http.post(f"/threads/{thread}/runs", json={"assistant_id": assistant}).json()["id"]
        foreign_key = (
            subprocess.run(
                [sys.executable, "-m", "workerprobe", "api-key", "create", "--name", "foreign"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.split("\t")[1]
            .strip()
        )
        with httpx.Client(
            base_url=f"{url}/v1", headers={"Authorization": f"Bearer {foreign_key}"}, timeout=30
        ) as other:
            foreign = {
                "assistant": other.post("/assistants", json={"model": MODEL}).json()["id"],
                "thread": other.post("/threads", json={}).json()["id"],
            }
        ids = {"assistant": assistant, "thread": thread, "message": message, "run": run}
        corpus = _corpus(ids, foreign, count)
        statuses: dict[str, int] = {}
        outside: list[str] = []
        server_errors: list[str] = []
        for label, raw in corpus:
            status, content_type, body = _send(port, raw)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if (
                label.startswith("GET /health")
                or label.startswith("GET /ready")
                or label.startswith("GET /models/search")
            ):
                enveloped = status < 400 or _is_envelope(body)
            else:
                enveloped = _is_envelope(body) if status >= 400 else b"json" in content_type
            if not enveloped:
                outside.append(f"{label} -> {status} {body[:80]!r}")
            if status >= 500 or status == 0:
                server_errors.append(f"{label} -> {status}")
        # The other project's objects, which every request above named, are as they were.
        with httpx.Client(base_url=f"{url}/v1", headers={"Authorization": f"Bearer {foreign_key}"}) as other:
            intact = all(
                other.get(path).status_code == 200
                for path in (f"/assistants/{foreign['assistant']}", f"/threads/{foreign['thread']}")
            )
    return {
        "requests": len(corpus),
        "statuses": dict(sorted(statuses.items())),
        "outside_the_envelope": len(outside),
        "server_errors": len(server_errors),
        "examples": (outside + server_errors)[:10],
        "stored_objects_intact": intact,
    }


def _is_envelope(body: bytes) -> bool:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI form: shorter runs, the same checks")
    parser.add_argument("--out", default=str(ROOT / "reports" / "chaos.json"))
    parser.add_argument("--only", nargs="*", help="run only these steps (default: all)")
    args = parser.parse_args()
    seconds = 3.0 if args.short else 8.0
    results: dict[str, Any] = {}
    with serve(["emulator"], env={"CF_API_TOKEN": TOKEN}) as emulator:
        folder = tempfile.mkdtemp(prefix="chaos-kill9-")
        steps = {
            "kill9-sqlite": lambda: kill9(emulator, {"database": f"{folder}/gateway.sqlite3"}, seconds),
            "kill9-redis": lambda: kill9(
                emulator,
                {"redis_url": "redis://127.0.0.1:6379/0", "redis_prefix": f"wp-chaos-{uuid.uuid4().hex}:"},
                seconds,
            ),
            "redis-outage": lambda: redis_outage(emulator, seconds * 1.5),
            "replicas-poller": lambda: replicas_poller(emulator, seconds),
            "sqlite-lock": lambda: sqlite_lock(emulator),
            "slow-clients": lambda: slow_clients(emulator, 1100),
            "chunked-uploads": lambda: chunked_uploads(emulator, 25 if args.short else 100),
            "malformed-corpus": lambda: malformed_corpus(emulator, 720),
        }
        for name, step in steps.items():
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            results[name] = {**step(), "seconds": round(time.monotonic() - started, 1)}
            print(f"{name:<18} {json.dumps(results[name])}", flush=True)
    failures = []
    verdicts: dict[str, Callable[[dict[str, Any]], bool]] = {  # True: the step failed its must-be-0
        "kill9-sqlite": lambda r: r["lost"] > 0,
        "kill9-redis": lambda r: r["lost"] > 0,
        "redis-outage": lambda r: bool(
            r["outside_the_envelope_or_unexpected"] or r["acknowledged_lost"] or r["recovered_s_after_restart"] is None
        ),
        "replicas-poller": lambda r: r["missed"] > 0,
        "sqlite-lock": lambda r: bool(
            r["health_unanswered_within_1s"] or any(w not in ("200", "503") for w in r["writes"])
        ),
        "slow-clients": lambda r: r["unanswered"] > 0,
        "chunked-uploads": lambda r: r["rss_peak_mb"] >= 150,
        "malformed-corpus": lambda r: bool(
            r["outside_the_envelope"] or r["server_errors"] or not r["stored_objects_intact"]
        ),
    }
    checks = {name: verdicts[name](result) for name, result in results.items()}
    failures = [name for name, bad in checks.items() if bad]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results, "failed": failures}, indent=2))
    print(f"\n{'FAILED: ' + ', '.join(failures) if failures else 'every must-be-0 figure is 0'}; {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
