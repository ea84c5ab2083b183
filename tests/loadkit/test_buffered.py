"""A stream held back on the way and sent in one piece is a failure cause of its own (`buffered`),
measured by the load client against a real emulator whose `buffered-stream` fault does that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.client import LLMClient
from workerprobe.loadkit.timing import Sample, buffered
from workerprobe.procs import serve
from workerprobe.suite.budget import Budget

MODEL = load_catalogue().default("text-generation").name


class _Fired:
    """Where the client reports its request events (Locust's `events.request` in a run; importing
    Locust here would monkey-patch the test process)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.request = self

    def fire(self, **event: Any) -> None:
        self.seen.append(event)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMClient]:
    env = {"CF_API_TOKEN": "t", "WORKERPROBE_EMULATOR_TTFT_MS": "100", "WORKERPROBE_EMULATOR_TPOT_MS": "10"}
    with serve(["emulator"], env=env) as emulator:
        budget = Budget(Path(tmp_path_factory.mktemp("budget")) / "budget.sqlite3", 1e9)
        llm = LLMClient(f"{emulator.url}/client/v4/accounts/acct/ai", "t", _Fired(), budget, 30, 10)
        yield llm
        llm.close()


def _ask(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 24, "stream": True}


def test_a_paced_stream_is_measured_and_a_buffered_one_is_a_failure(client: LLMClient) -> None:
    paced = client.chat(_ask("Describe a harbour"), "chat", 24, 1)
    assert paced.cause is None and paced.sample is not None and not buffered(paced.sample)
    held = client.chat(_ask("Describe a harbour EMULATE_FAULT:buffered-stream"), "chat", 24, 1)
    assert held.cause == "buffered" and held.sample is None
    reported = client.events.seen[-1]
    assert reported["context"] == {"llm_cause": "buffered"} and "arrived at once" in str(reported["exception"])


@pytest.mark.parametrize(
    ("sent", "times", "expected"),
    [
        (0.0, [0.300, 0.3001, 0.3002, 0.3003, 0.3004], True),  # all at once after 300 ms
        (0.0, [0.200, 0.220, 0.240, 0.260, 0.280], False),  # paced
        (0.0, [0.002, 0.002, 0.002, 0.002, 0.002], False),  # a zero-latency upstream: nothing held back
        (0.0, [0.300, 0.300, 0.300], False),  # too few chunks to tell
    ],
)
def test_what_counts_as_buffered(sent: float, times: list[float], expected: bool) -> None:
    sample = Sample(e2e=times[-1] - sent, ttft=times[0] - sent, sent=sent, content_times=times)
    assert buffered(sample) is expected
