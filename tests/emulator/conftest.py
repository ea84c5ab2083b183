"""Real emulator processes on free loopback ports, and a client for them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from workerprobe.catalogue import load as load_catalogue
from workerprobe.procs import serve
from workerprobe.sse import Decoder, Event

TOKEN = "emulator-test-token"
TEXT_MODEL = load_catalogue().default("text-generation").name


class Emulator:
    """A running emulator: base URLs and a few helpers over httpx."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})

    def path(self, account: str, rest: str) -> str:
        return f"/client/v4/accounts/{account}/ai/{rest}"

    def run(self, model: str, body: Any, account: str = "acct", **headers: str) -> httpx.Response:
        return self.http.post(self.path(account, f"run/{model}"), json=body, headers=headers)

    def stream(self, model: str, body: dict[str, Any], account: str = "acct", **headers: str) -> list[Event]:
        """Stream a run and decode it incrementally from the raw socket reads."""
        decoder = Decoder()
        events: list[Event] = []
        with self.http.stream(
            "POST", self.path(account, f"run/{model}"), json={**body, "stream": True}, headers=headers
        ) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for chunk in response.iter_raw():
                events.extend(decoder.feed(chunk))
        events.extend(decoder.close())
        return events

    def usage(self) -> dict[str, Any]:
        return self.http.get("/__emulator/usage").json()

    def clock(self, **body: Any) -> None:
        self.http.post("/__emulator/clock", json=body).raise_for_status()

    def close(self) -> None:
        self.http.close()


@contextmanager
def running(**env: str) -> Iterator[Emulator]:
    base = {"CF_API_TOKEN": TOKEN, "WORKERPROBE_EMULATOR_TEST_MODE": "true"}
    with serve(["emulator"], env={**base, **env}) as server:
        emulator = Emulator(server.url)
        try:
            yield emulator
        finally:
            emulator.close()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """A shared emulator with zero latency and no limits (tests use their own accounts)."""
    with running() as e:
        yield e


@pytest.fixture(scope="module")
def start_emulator() -> Iterator[Callable[..., AbstractContextManager[Emulator]]]:
    yield running


def text_of(events: list[Event]) -> str:
    """Reassembled text of a native stream."""
    out = []
    for event in events:
        if event.data == "[DONE]":
            continue
        out.append(json.loads(event.data).get("response") or "")
    return "".join(out)


def error_of(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    (error,) = body["errors"]
    return response.status_code, error["code"], error["message"]
