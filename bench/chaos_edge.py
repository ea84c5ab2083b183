"""Attacks of bench/chaos.py on the gateway's edge: half-sent requests past the open-file limit,
large chunked uploads, and a corpus of malformed requests over every endpoint."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import psutil
from chaos_store import AUTH, KEY, MODEL, TOKEN, gateway_process

from workerprobe.procs import Server, gateway_env


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
