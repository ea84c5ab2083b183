"""Stream timing definitions (vLLM bench's) on hand-made streams with known arrival times."""

from __future__ import annotations

import pytest

from workerprobe import sse
from workerprobe.loadkit.timing import StreamMeter


def _chunk(content: str | None = None, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict[str, str] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    return sse.encode_json({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_ttft_tpot_itl_from_usage() -> None:
    meter = StreamMeter(start=10.0)
    meter.feed(_chunk("", role=True), 10.05)  # first byte, no content: not TTFT
    meter.feed(_chunk("Hello"), 10.20)
    meter.feed(_chunk(" there"), 10.25)
    meter.feed(_chunk(" friend") + _chunk(finish="stop"), 10.35)
    meter.feed(
        sse.encode_json(
            {"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
        )
        + sse.DONE,
        10.36,
    )
    sample = meter.finish(10.40)
    assert sample.ttfb == pytest.approx(0.05)
    assert sample.ttft == pytest.approx(0.20)
    assert sample.gaps == pytest.approx([0.05, 0.10])
    assert sample.output_tokens == 3 and not sample.estimated
    assert sample.tpot == pytest.approx((0.40 - 0.20) / 2)
    assert sample.finish_reason == "stop" and meter.done


def test_tokens_estimated_without_usage_and_split_reads() -> None:
    meter = StreamMeter(start=0.0)
    wire = _chunk("", role=True) + _chunk("a b c") + _chunk(finish="length") + sse.DONE
    for i in range(0, len(wire), 7):
        meter.feed(wire[i : i + 7], 0.1 + i / 1000)
    sample = meter.finish(1.0)
    assert sample.output_tokens == 3 and sample.estimated
    assert sample.finish_reason == "length"


def test_errors_cuts_and_malformed_events() -> None:
    meter = StreamMeter(start=0.0)
    meter.feed(_chunk("x") + b'data: {"error": {"message": "boom"}}\n\n' + sse.DONE, 0.1)
    assert meter.error == {"message": "boom"} and meter.done
    bad = StreamMeter(start=0.0)
    bad.feed(b"data: {nope\n\n", 0.1)
    assert bad.malformed and not bad.done


def test_longest_gap_for_stall_detection() -> None:
    meter = StreamMeter(start=0.0)
    for t, piece in ((0.1, "a"), (0.2, "b"), (3.2, "c"), (3.3, "d")):
        meter.feed(_chunk(piece), t)
    assert meter.finish(3.4).longest_gap == pytest.approx(3.0)


def _event(kind: str, **fields: object) -> bytes:
    return sse.encode_json({"type": kind, "sequence_number": 0, **fields}, event=kind)


def test_a_streamed_response_is_timed_at_its_first_text_delta() -> None:
    """The Responses API: created and in_progress are not TTFT; the first output_text.delta is; the
    terminal event gives the usage and whether the answer was cut."""
    meter = StreamMeter(start=0.0)
    meter.feed(_event("response.created", response={"id": "r", "usage": None}), 0.02)
    meter.feed(_event("response.in_progress", response={"id": "r"}), 0.03)
    meter.feed(_event("response.output_text.delta", delta="Hel"), 0.20)
    meter.feed(_event("response.output_text.delta", delta="lo"), 0.25)
    usage = {"input_tokens": 5, "output_tokens": 16, "total_tokens": 21}
    details = {"reason": "max_output_tokens"}
    meter.feed(_event("response.incomplete", response={"id": "r", "usage": usage, "incomplete_details": details}), 0.3)
    sample = meter.finish(0.31)
    assert sample.ttfb == pytest.approx(0.02) and sample.ttft == pytest.approx(0.20)
    assert sample.gaps == pytest.approx([0.05]) and meter.done and meter.error is None
    assert sample.output_tokens == 16 and sample.prompt_tokens == 5 and not sample.estimated
    assert sample.finish_reason == "length"
    failed = StreamMeter(start=0.0)
    failed.feed(_event("error", code="server_error", message="boom"), 0.1)
    failed.feed(_event("response.failed", response={"id": "r", "error": {"code": "x", "message": "boom"}}), 0.1)
    assert failed.error is not None and failed.done
