"""SSE streams of /ai/run, decoded incrementally from the socket, and stream faults."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.emulator.conftest import TEXT_MODEL, Emulator, text_of
from workerprobe import tokens
from workerprobe.sse import Decoder

BODY = {
    "messages": [{"role": "user", "content": "Write a detailed story about a harbour"}],
    "max_tokens": 60,
    "temperature": 0.5,
    "seed": 7,
}


def test_native_stream_framing(emulator: Emulator) -> None:
    events = emulator.stream(TEXT_MODEL, BODY)
    assert events[-1].data == "[DONE]"
    payloads = [json.loads(e.data) for e in events[:-1]]
    assert payloads[0]["response"] == "" and payloads[0]["tool_calls"] == []
    usage_event = payloads[-1]
    assert usage_event == {"response": "", "usage": usage_event["usage"]}
    assert all("p" in p for p in payloads[:-1])  # padding on every event but the usage one
    assert all(set(p["p"]) <= set("abdefghijklmnoprstuvxyz1234567890") for p in payloads[:-1])
    assert any("response" not in p for p in payloads[:-1])  # a chunk without `response`, as live
    content = [p["response"] for p in payloads if p.get("response")]
    assert len(content) == 60 == usage_event["usage"]["completion_tokens"]


def test_stream_text_equals_non_streamed_text(emulator: Emulator) -> None:
    streamed = text_of(emulator.stream(TEXT_MODEL, BODY))
    plain = emulator.run(TEXT_MODEL, BODY).json()["result"]["response"]
    assert streamed == plain
    assert tokens.count(plain) == 60


def test_openai_shaped_stream_of_newer_models(emulator: Emulator) -> None:
    events = emulator.stream("@cf/google/gemma-4-26b-a4b-it", BODY)
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert [f for f in finishes if f] == ["length"]
    assert chunks[-2]["choices"] == []
    assert chunks[-1]["response"] == "" and chunks[-1]["usage"]["completion_tokens"] == 60
    increments = sum(c["usage"]["completion_tokens"] for c in chunks[:-2] if "usage" in c)
    assert increments == 60  # per-chunk usage is incremental, the last event cumulative


def test_cut_stream_ends_without_done(emulator: Emulator) -> None:
    decoder = Decoder()
    events = []
    with pytest.raises(httpx.RemoteProtocolError):
        with emulator.http.stream(
            "POST",
            emulator.path("acct", f"run/{TEXT_MODEL}"),
            json={**BODY, "stream": True},
            headers={"x-emulate-fault": "cut-stream"},
        ) as r:
            for chunk in r.iter_raw():
                events.extend(decoder.feed(chunk))
    assert events and all(e.data != "[DONE]" for e in events)
    assert 0 < len(text_of(events)) < len(emulator.run(TEXT_MODEL, BODY).json()["result"]["response"])


def test_malformed_event(emulator: Emulator) -> None:
    events = emulator.stream(TEXT_MODEL, BODY, **{"x-emulate-fault": "malformed-event"})
    bad = []
    for event in events[:-1]:
        try:
            json.loads(event.data)
        except json.JSONDecodeError:
            bad.append(event.data)
    assert bad == ['{"response":"']
    assert events[-1].data == "[DONE]"


def test_split_events_reassemble_to_the_same_text(emulator: Emulator) -> None:
    plain = emulator.run(TEXT_MODEL, BODY).json()["result"]["response"]
    reads = []
    decoder = Decoder()
    events = []
    with emulator.http.stream(
        "POST",
        emulator.path("acct", f"run/{TEXT_MODEL}"),
        json={**BODY, "stream": True},
        headers={"x-emulate-fault": "split-events"},
    ) as r:
        for chunk in r.iter_raw():
            reads.append(chunk)
            events.extend(decoder.feed(chunk))
    assert text_of(events) == plain
    # Reads really did fall inside events.
    assert sum(1 for chunk in reads if not chunk.endswith(b"\n\n")) > len(reads) // 2


def test_slow_stream_stalls_midway(emulator: Emulator) -> None:
    arrivals = []
    with emulator.http.stream(
        "POST",
        emulator.path("acct", f"run/{TEXT_MODEL}"),
        json={**BODY, "stream": True},
        headers={"x-emulate-fault": "slow-stream", "x-emulate-stall-ms": "400"},
    ) as r:
        decoder = Decoder()
        for chunk in r.iter_raw():
            for _ in decoder.feed(chunk):
                arrivals.append(time.monotonic())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) >= 0.35  # the stall is measured from the start, not from the event before


def test_stream_pacing_follows_the_latency_model(start_emulator) -> None:
    """The pace judged by the server's own clock (its trace of the call): the client's arrival times
    on a busy machine can bunch tokens the server sent 20 ms apart (a late first read), and failed
    this test so."""
    with start_emulator(WORKERPROBE_EMULATOR_TTFT_MS="200", WORKERPROBE_EMULATOR_TPOT_MS="20") as emulator:
        started = time.monotonic()
        arrivals = []
        with emulator.http.stream(
            "POST",
            emulator.path("acct", f"run/{TEXT_MODEL}"),
            json={**BODY, "max_tokens": 10, "stream": True},
            headers={"x-request-id": "pacing"},
        ) as r:
            decoder = Decoder()
            for chunk in r.iter_raw():
                for event in decoder.feed(chunk):
                    if event.data != "[DONE]" and json.loads(event.data).get("response"):
                        arrivals.append(time.monotonic() - started)
        trace = emulator.http.get("/__emulator/trace", params={"ids": "pacing"}).json()["pacing"]
    assert len(arrivals) == 10 and len(trace["tokens"]) == 10
    assert arrivals[0] >= 0.2  # the client started before the server: a lower bound on any machine
    # token i is due at ttft + i * tpot from the response's start and is never sent before (a late
    # token does not move the next one's due time: on a busy machine the gaps may shrink, never the
    # times from the start)
    sent = [t - trace["started"] for t in trace["tokens"]]
    assert all(at >= 0.2 + i * 0.02 - 0.001 for i, at in enumerate(sent)), sent
