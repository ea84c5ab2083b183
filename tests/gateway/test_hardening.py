"""The gateway against hostile input, a failing store and a crash, each against real processes:
every error in the OpenAI envelope, the connection kept usable, nothing stored lost or half-made."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.gateway.conftest import CHAT_MODEL, KEY, UPSTREAM_TOKEN
from workerprobe.gateway import create_app
from workerprobe.gateway.app import Parts
from workerprobe.gateway.assistants.runs import RunsService
from workerprobe.gateway.assistants.service import ListQuery
from workerprobe.gateway.store import Page
from workerprobe.procs import Server, free_port, gateway_env, redis_server, serve, stop, wait_listening
from workerprobe.settings import GatewaySettings

HEADERS = {"Authorization": f"Bearer {KEY}"}


def _envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return dict(error)


@contextmanager
def _gateway(emulator: Server, **settings: str) -> Iterator[httpx.Client]:
    env = gateway_env(emulator.url, api_key=KEY, token=UPSTREAM_TOKEN, account="hardening", **settings)
    with serve(["gateway"], env=env) as gateway:
        with httpx.Client(base_url=gateway.url, headers=HEADERS, timeout=30) as http:
            yield http


@pytest.fixture(scope="module")
def emulator() -> Iterator[Server]:
    with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as server:
        yield server


@pytest.fixture(scope="module")
def http(emulator: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    database = str(tmp_path_factory.mktemp("hardening") / "gateway.sqlite3")
    with _gateway(emulator, database=database, max_body_bytes="200000") as client:
        yield client


def _nested(depth: int) -> Any:
    value: Any = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"x": value}}
    return value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {
                "model": CHAT_MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": _nested(150)}}],
            },
        ),
        ("/v1/assistants", {"model": CHAT_MODEL, "response_format": _nested(150)}),
        ("/v1/threads", {"tool_resources": _nested(300)}),
        ("/v1/assistants", {"model": CHAT_MODEL, "metadata": {"k": "v"}, "tools": [_nested(300)]}),
        ("/v1/threads/runs", {"assistant_id": "asst_x", "max_prompt_tokens": 1e29}),
        ("/v1/chat/completions", {"model": CHAT_MODEL, "messages": [], "max_tokens": 1e29}),
        ("/v1/threads/runs", {"assistant_id": "asst_x", "max_completion_tokens": 2**64 + 5}),
        ("/v1/chat/completions", {"model": CHAT_MODEL, "messages": [], "seed": 2**63}),
    ],
)
def test_deep_nesting_and_huge_numbers_are_400_with_param(http: httpx.Client, path: str, body: Any) -> None:
    error = _envelope(http.post(path, json=body), 400)
    assert error["param"], error
    assert http.get("/v1/models").status_code == 200  # the same connection, still usable


def _answer(sock: socket.socket, body: bool = False) -> bytes:
    """One whole HTTP answer (headers, then `content-length` bytes of body): its head, or with
    `body` the whole of it."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest if body else head


def _raw(port: int, *requests: bytes) -> list[bytes]:
    """Send requests on one connection, one after the other; the status line of each answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        lines = []
        for request in requests:
            sock.sendall(request)
            lines.append(_answer(sock).split(b"\r\n", 1)[0])
    return lines


def test_errors_keep_the_connection_and_an_oversized_chunked_body_is_refused_while_read(http: httpx.Client) -> None:
    port = http.base_url.port
    assert port is not None
    auth = f"Authorization: Bearer {KEY}\r\n".encode()
    bad = b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 5\r\n\r\n{oops"
    ok = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
    assert _raw(port, bad, ok) == [b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK"]
    # A chunked body past the limit (200 kB here): 413 after the limit and one chunk, connection closed.
    chunk = b"a" * 65536
    frames = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(8))
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            sock.sendall(frames)
        except OSError:
            pass  # the gateway may close before the rest arrives
        answer = sock.recv(65536)
    # The body of that answer may be lost to the reset of a connection closed with unread input
    # (no lingering close); its headers arrive first.
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in answer.lower()
    declared = b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 300000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(declared)  # refused on its declared length, before a byte of the body
        head = _answer(sock)
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head.lower()


def test_a_body_in_many_chunks_is_read_whole_and_its_nesting_checked(http: httpx.Client) -> None:
    """The body arrives as several ASGI messages (chunked, with pauses): all of it is read, the
    same as in one; and a body nested past the limit in few bytes is still refused."""
    port = http.base_url.port
    assert port is not None
    auth = f"Authorization: Bearer {KEY}\r\n".encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"

    def chunked(body: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)
            for start in range(0, len(body), 7):
                piece = body[start : start + 7]
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                time.sleep(0.002)
            sock.sendall(b"0\r\n\r\n")
            return _answer(sock, body=True)

    body = json.dumps({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 5})
    answer = chunked(body.encode())
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["object"] == "chat.completion"
    deep = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}], "metadata": "[" * 70 + "]" * 70}
    nested = json.dumps(deep).replace('"' + "[" * 70 + "]" * 70 + '"', "[" * 70 + "]" * 70)
    refused = chunked(nested.encode())
    assert refused.startswith(b"HTTP/1.1 400 "), refused[:300]
    assert b"nested more than 64 levels" in refused


def test_failed_authentications_are_limited_per_address(emulator: Server, tmp_path: Path) -> None:
    limited = {"auth_failures_per_minute": "20", "auth_failures_exempt": "[]", "database": str(tmp_path / "g.sqlite3")}
    with _gateway(emulator, **limited) as http:
        stale = [http.get("/v1/models", headers={"Authorization": "Bearer stale"}).status_code for _ in range(40)]
        assert set(stale) == {401}  # one stale key retried is no brute force
        guesses = [
            http.get("/v1/models", headers={"Authorization": f"Bearer guess-{i}"}).status_code for i in range(25)
        ]
        assert guesses[:19] == [401] * 19 and set(guesses[19:]) == {429}
        refused = http.get("/v1/models")  # the right key, from the same address: refused until the window ends
        error = _envelope(refused, 429)
        assert error["code"] == "too_many_auth_failures" and int(refused.headers["retry-after"]) >= 1


def test_a_failed_create_and_run_leaves_nothing_behind(emulator: Server, tmp_path: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    with _gateway(emulator, database=str(database)) as http:
        assistant = http.post("/v1/assistants", json={"model": CHAT_MODEL}).json()
        before = sqlite3.connect(database).execute("SELECT count(*) FROM objects").fetchone()[0]
        body = {
            "assistant_id": assistant["id"],
            "model": "@cf/nobody/no-such-model",
            "thread": {"messages": [{"role": "user", "content": "hello"}]},
        }
        _envelope(http.post("/v1/threads/runs", json=body), 404)
        after = sqlite3.connect(database).execute("SELECT count(*) FROM objects").fetchone()[0]
        assert after == before


def test_objects_stored_before_projects_belong_to_api_keys_project(emulator: Server, tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    with _gateway(emulator, database=str(database)):
        pass  # the schema
    old = {"id": "asst_old", "object": "assistant", "model": CHAT_MODEL, "name": "from before"}
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO objects (kind, id, parent, body) VALUES ('assistant', 'asst_old', '', ?)", (json.dumps(old),)
        )
    with _gateway(emulator, database=str(database)) as http:
        assert http.get("/v1/assistants/asst_old").json()["name"] == "from before"


def test_a_locked_sqlite_file_is_503_and_the_gateway_keeps_answering(emulator: Server, tmp_path: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    with _gateway(emulator, database=str(database), store_busy_timeout_s="1") as http:
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock
        try:
            answers: list[httpx.Response] = []
            writer = threading.Thread(
                target=lambda: answers.append(http.post("/v1/assistants", json={"model": CHAT_MODEL}))
            )
            writer.start()
            health = []
            while writer.is_alive():  # the store waits on the lock; the event loop does not
                health.append(http.get("/health").status_code)
            writer.join()
            assert health and set(health) == {200}
            error = _envelope(answers[0], 503)
            assert error["code"] == "service_unavailable" and answers[0].headers["retry-after"]
            # Readiness: the file still answers reads (WAL), so the replica stays in rotation.
            assert http.get("/ready").status_code == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert http.post("/v1/assistants", json={"model": CHAT_MODEL}).status_code == 200
        assert http.get("/ready").json()["status"] == "ready"


def test_redis_down_is_503_in_the_envelope_and_the_gateway_recovers(emulator: Server) -> None:
    port = free_port()
    with redis_server(port) as redis, _gateway(emulator, redis_url=f"redis://127.0.0.1:{port}/0") as http:
        made = http.post("/v1/assistants", json={"model": CHAT_MODEL, "name": "kept"}).json()
        stop(redis.process)
        error = _envelope(http.post("/v1/assistants", json={"model": CHAT_MODEL}), 503)
        assert error["code"] == "service_unavailable"
        assert "127.0.0.1" not in error["message"] and str(port) not in error["message"]
        _envelope(http.get(f"/v1/assistants/{made['id']}"), 503)
        assert http.get("/health").status_code == 200
        assert http.get("/ready").status_code == 503
        with redis_server(port):  # back (empty: this Redis keeps nothing on disk)
            for _ in range(100):
                if http.get("/ready").status_code == 200:
                    break
                time.sleep(0.1)
            assert http.post("/v1/assistants", json={"model": CHAT_MODEL}).status_code == 200


def test_an_unreachable_upstream_is_502_in_our_own_words(tmp_path: Path) -> None:
    with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as gone:
        env = gateway_env(gone.url, api_key=KEY, token=UPSTREAM_TOKEN, database=str(tmp_path / "g.sqlite3"))
    with serve(["gateway"], env=env) as gateway:  # its upstream's port is closed now
        body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=HEADERS, timeout=30)
        error = _envelope(answer, 502)
        port = gone.url.rsplit(":", 1)[1]
        assert port not in error["message"] and "127.0.0.1" not in error["message"]
        assert "Cannot connect" not in error["message"] and "aiohttp" not in error["message"]


def test_a_run_left_in_progress_by_a_killed_gateway_fails_after_the_restart(tmp_path: Path) -> None:
    slow = {"CF_API_TOKEN": UPSTREAM_TOKEN, "WORKERPROBE_EMULATOR_TTFT_MS": "30000"}
    database = str(tmp_path / "gateway.sqlite3")
    with serve(["emulator"], env=slow) as emulator:
        env = {
            **os.environ,
            **gateway_env(emulator.url, api_key=KEY, token=UPSTREAM_TOKEN, database=database, run_heartbeat_s="0.2"),
        }
        port = free_port()
        argv = [sys.executable, "-m", "workerprobe", "gateway", "--port", str(port)]
        first = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        try:
            wait_listening("127.0.0.1", port, 20, first)
            url = f"http://127.0.0.1:{port}/v1"
            with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
                assistant = http.post("/assistants", json={"model": CHAT_MODEL}).json()
                body = {"assistant_id": assistant["id"], "thread": {"messages": [{"role": "user", "content": "hi"}]}}
                run = http.post("/threads/runs", json=body).json()
                while http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()["status"] == "queued":
                    time.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        with serve(["gateway"], env=env) as second, httpx.Client(base_url=f"{second.url}/v1", headers=HEADERS) as http:
            seen = []
            for _ in range(100):  # the dead process's heartbeat lapses within three beats
                seen.append(http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json())
                if seen[-1]["status"] != "in_progress":
                    break
                time.sleep(0.1)
            assert seen[-1]["status"] == "failed", seen[-1]
            assert "restarted" in seen[-1]["last_error"]["message"]


def test_idempotency_keys_replay_creates_and_refuse_another_body(http: httpx.Client) -> None:
    key = {"Idempotency-Key": f"idem-{time.time_ns()}"}
    body = {"model": CHAT_MODEL, "name": "once"}
    first = http.post("/v1/assistants", json=body, headers=key)
    again = http.post("/v1/assistants", json=body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    error = _envelope(http.post("/v1/assistants", json={**body, "name": "twice"}, headers=key), 409)
    assert error["code"] == "idempotency_conflict"
    named = [a for a in http.get("/v1/assistants", params={"limit": 100}).json()["data"] if a["name"] == "once"]
    assert [a["id"] for a in named] == [first.json()["id"]]  # one object, however often it was sent
    thread_key = {"Idempotency-Key": f"idem-thread-{time.time_ns()}"}
    made = {http.post("/v1/threads", json={}, headers=thread_key).json()["id"] for _ in range(3)}
    assert len(made) == 1


class _BrokenRuns(RunsService):
    """A runs service with a bug of the kind no handler knows (a test double, through `Parts`)."""

    async def list_runs(self, project: str, thread_id: str, query: ListQuery) -> Page:
        raise KeyError("a bug")


def test_an_unexpected_error_is_500_in_the_envelope_with_the_request_id_and_the_connection_stays(
    emulator: Server, tmp_path: Path
) -> None:
    settings = GatewaySettings(
        api_key=KEY,
        cf_api_base_url=f"{emulator.url}/client/v4",
        cf_account_id="hardening",
        cf_api_token=UPSTREAM_TOKEN,
        database=str(tmp_path / "g.sqlite3"),
    )
    port = free_port()
    config = uvicorn.Config(create_app(settings, parts=Parts(runs=_BrokenRuns)), port=port, log_level="critical")
    server = uvicorn.Server(config)
    running = threading.Thread(target=server.run)
    running.start()
    try:
        wait_listening("127.0.0.1", port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", headers=HEADERS, timeout=30) as http:
            thread = http.post("/threads", json={}).json()["id"]
            broken = http.get(f"/threads/{thread}/runs", headers={"x-request-id": "req-broken-1"})
            error = _envelope(broken, 500)
            assert error["code"] == "internal_error" and "req-broken-1" in error["message"]
            assert "KeyError" not in error["message"] and "a bug" not in error["message"]
            assert broken.headers["x-request-id"] == "req-broken-1"
        auth = f"Authorization: Bearer {KEY}\r\n".encode()
        again = f"GET /v1/threads/{thread}/runs HTTP/1.1\r\nHost: x\r\n".encode() + auth + b"\r\n"
        fine = f"GET /v1/threads/{thread} HTTP/1.1\r\nHost: x\r\n".encode() + auth + b"\r\n"
        assert _raw(port, again, fine) == [b"HTTP/1.1 500 Internal Server Error", b"HTTP/1.1 200 OK"]
    finally:
        server.should_exit = True
        running.join()


def test_half_sent_requests_and_trickled_bodies_are_closed_at_their_deadlines(emulator: Server, tmp_path: Path) -> None:
    bounds = {"header_timeout_s": "1", "body_timeout_s": "1", "database": str(tmp_path / "g.sqlite3")}
    with _gateway(emulator, **bounds) as http:
        port = http.base_url.port
        assert port is not None
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as half,
            socket.create_connection(("127.0.0.1", port), timeout=10) as trickle,
        ):
            _deadlines_close(half, trickle)
        assert http.get("/health").status_code == 200


def _deadlines_close(half: socket.socket, trickle: socket.socket) -> None:
    half.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    head = b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
    trickle.sendall(head + b"\r\nContent-Length: 100\r\n\r\n{")  # 1 byte of 100
    # Closed by the gateway, without an answer, long before the sockets' own 10 s timeout (which
    # would raise here instead).
    assert half.recv(1) == b""
    assert trickle.recv(65536) == b""  # the app saw the client go; nothing was stored


def test_two_authorization_headers_are_a_400(http: httpx.Client) -> None:
    port = http.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            + f"Authorization: Bearer {KEY}\r\n\r\n".encode()
        )
        answer = _answer(sock, body=True)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"]["param"] == "authorization"


def test_a_refused_key_closes_the_connection_without_reading_the_body(http: httpx.Client) -> None:
    """A wrong key with a 100 MB body declared: 401 at once, then the connection closes; the rest
    of the body is never read (the gateway does not take 100 MB to refuse a key)."""
    port = http.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n" + b" " * 65536
        )
        head = _answer(sock)
        assert head.startswith(b"HTTP/1.1 401") and b"connection: close" in head.lower()
        rest = b""
        while chunk := sock.recv(65536):  # EOF: closed (a kept connection would block until the 10 s timeout)
            rest += chunk
        assert len(rest) < 4096


def test_a_request_id_is_passed_on_within_its_bound(http: httpx.Client) -> None:
    mine = http.get("/v1/models", headers={"x-request-id": "req-123_abc"})
    assert mine.headers["x-request-id"] == "req-123_abc"
    for unusable in ("x" * 8192, "has space", "x" * 129):
        answer = http.get("/v1/models", headers={"x-request-id": unusable})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] != unusable and 0 < len(answer.headers["x-request-id"]) <= 128


def test_slow_bodies_with_a_valid_key_cannot_fill_the_connection_cap(emulator: Server, tmp_path: Path) -> None:
    """Past the cap, the oldest connection still sending its request is closed, whether it is in its
    headers or, with a valid key, in its body: a client that sends its request at once gets in."""
    bounds = {"max_connections": "16", "body_timeout_s": "60", "database": str(tmp_path / "g.sqlite3")}
    with _gateway(emulator, **bounds) as http:
        port = http.base_url.port
        assert port is not None
        head = (
            b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n{"
        )
        slow = []
        try:
            for _ in range(40):  # well past the cap, each in its body phase
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(head)
                slow.append(sock)
            for _ in range(5):
                with httpx.Client(base_url=http.base_url, timeout=10) as fresh:
                    assert fresh.get("/health").status_code == 200
            closed = 0
            for sock in slow:
                sock.settimeout(0.5)
                try:
                    closed += sock.recv(1) == b""
                except TimeoutError:
                    pass
            assert closed >= len(slow) - 16  # the oldest were closed to let the others in
        finally:
            for sock in slow:
                sock.close()
