"""The load client's clock starts when a request goes out on its connection, not when the call is
made: requests' and urllib3's own preparation is the client's time, not the server's. Over HTTPS
(what a deployed Worker speaks), with a certificate from a local CA that the environment's
REQUESTS_CA_BUNDLE names, as a user's would."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.client import LLMClient
from workerprobe.suite.budget import Budget

MODEL = load_catalogue().default("text-generation").name
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
DONE = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


class _Fired:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.request = self

    def fire(self, **event: Any) -> None:
        self.seen.append(event)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    accepted: list[float]
    arrived: list[float]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.server.accepted.append(time.perf_counter())  # the TLS handshake follows, in this thread
        super().setup()

    def do_POST(self) -> None:  # noqa: N802
        self.server.arrived.append(time.perf_counter())
        self.rfile.read(int(self.headers["content-length"]))
        body = CHUNK + DONE
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    server = _Server(("127.0.0.1", 0), _Handler)
    server.accepted, server.arrived = [], []
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _SlowAuth(requests.auth.AuthBase):
    """Request preparation that takes at least 50 ms: the client's own time before sending."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        time.sleep(0.05)
        return request


def test_the_clock_starts_when_the_request_goes_out(tls_server: _Server, tmp_path: Path) -> None:
    budget = Budget(tmp_path / "budget.sqlite3", 1e9)
    client = LLMClient(f"https://127.0.0.1:{tls_server.server_address[1]}", "k", _Fired(), budget, 30, 10)
    client.http.auth = _SlowAuth()
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True, "max_tokens": 4}
    try:
        samples = []
        for _ in range(2):  # a new connection (TCP and TLS set-up), then the same one again
            called = time.perf_counter()
            result = client.chat(ask, "chat", 4, 1)
            assert result.cause is None and result.sample is not None, result
            samples.append((called, result.sample))
    finally:
        client.close()
    assert len(tls_server.accepted) == 1, "the second request did not reuse the connection"
    (first_call, first), (second_call, second) = samples
    assert first.sent is not None and second.sent is not None
    # After the preparation (which slept 50 ms), and no later than the server saw it.
    assert first.sent >= first_call + 0.05 and second.sent >= second_call + 0.05
    # A new connection's set-up counts: the clock started before the server accepted it.
    assert first.sent <= tls_server.accepted[0] <= tls_server.arrived[0]
    assert second.sent <= tls_server.arrived[1]
    assert first.ttft is not None and first.ttft >= tls_server.arrived[0] - first.sent
