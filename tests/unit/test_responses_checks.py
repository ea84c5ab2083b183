"""The Responses API's rules on streams and answers built by hand: each fault found once, at its
rule, and a faithful stream (the gateway's order of events) found clean."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from workerprobe import sse
from workerprobe.suite import responses_checks as rc
from workerprobe.suite.rules import (
    RESPONSE_LIMIT,
    RESPONSE_SILENT_TRUNCATION,
    RESPONSE_STREAM_DONE,
    RESPONSE_STREAM_EVENTS,
    RESPONSE_STREAM_IDENTITY,
    RESPONSE_STREAM_ITEM_IDS,
    RESPONSE_STREAM_SEQUENCE,
    RESPONSE_STREAM_TEXT,
    RESPONSE_USAGE_ARITHMETIC,
)


def _response(text: str, status: str = "completed", output_tokens: int = 3, rid: str = "resp_1") -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": rid,
        "object": "response",
        "status": status,
        "output": [message],
        "usage": {"input_tokens": 5, "output_tokens": output_tokens, "total_tokens": 5 + output_tokens},
    }


def _events(deltas: list[str], *, final: str | None = None, status: str = "completed") -> list[dict[str, Any]]:
    text = "".join(deltas)
    started = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": {"type": "output_text", "text": ""}},
        *({"type": "response.output_text.delta", **where, "delta": d} for d in deltas),
        {"type": "response.output_text.done", **where, "text": text},
        {"type": "response.content_part.done", **where, "part": {"type": "output_text", "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": {**item, "status": "completed"}},
        {"type": f"response.{status}", "response": _response(final if final is not None else text, status)},
    ]
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


def _wire(events: list[dict[str, Any]], done: bool = False) -> bytes:
    out = b"".join(sse.encode_json(e, event=e["type"]) for e in events)
    return out + (sse.DONE if done else b"")


def _rules(found: list[Any]) -> set[str]:
    return {rule.name for rule, _ in found}


def test_a_faithful_stream_is_clean() -> None:
    assert rc.inspect_response_stream({"max_output_tokens": 64}, _wire(_events(["Hel", "lo."]))) == []


def test_a_done_line_is_a_should() -> None:
    assert _rules(rc.inspect_response_stream({}, _wire(_events(["Hi."]), done=True))) == {RESPONSE_STREAM_DONE.name}


def test_no_terminal_event() -> None:
    events = _events(["Hi."])[:-1]
    assert _rules(rc.inspect_response_stream({}, _wire(events))) == {RESPONSE_STREAM_EVENTS.name}


def test_two_terminal_events() -> None:
    events = _events(["Hi."])
    events.append({**events[-1], "sequence_number": 99})
    assert RESPONSE_STREAM_EVENTS.name in _rules(rc.inspect_response_stream({}, _wire(events)))


def test_a_line_that_is_not_an_event() -> None:
    wire = b"data: not json\n\n" + _wire(_events(["Hi."]))
    assert _rules(rc.inspect_response_stream({}, wire)) == {RESPONSE_STREAM_EVENTS.name}


@pytest.mark.parametrize("numbers", [[0, 1, 1], [2, 1, 0], None])
def test_sequence_numbers_increase(numbers: list[int] | None) -> None:
    events = _events(["Hi."])
    if numbers is None:
        del events[3]["sequence_number"]
    else:
        for event, n in zip(events, numbers, strict=False):
            event["sequence_number"] = n
    assert _rules(rc.inspect_response_stream({}, _wire(events))) == {RESPONSE_STREAM_SEQUENCE.name}


def test_the_lifecycle_changes_its_id() -> None:
    events = _events(["Hi."])
    events[1] = {**events[1], "response": {**events[1]["response"], "id": "resp_2"}}
    assert _rules(rc.inspect_response_stream({}, _wire(events))) == {RESPONSE_STREAM_IDENTITY.name}


def test_a_delta_before_its_item_was_added() -> None:
    events = [e for e in _events(["Hi."]) if e["type"] != "response.output_item.added"]
    assert RESPONSE_STREAM_IDENTITY.name in _rules(rc.inspect_response_stream({}, _wire(events)))


def test_a_delta_names_another_item() -> None:
    events = _events(["Hi", "."])
    events[4] = {**events[4], "item_id": "msg_other"}
    assert _rules(rc.inspect_response_stream({}, _wire(events))) == {RESPONSE_STREAM_ITEM_IDS.name}


def test_the_deltas_are_not_the_final_text() -> None:
    found = rc.inspect_response_stream({}, _wire(_events(["Hel", "lo."], final="Goodbye.")))
    assert _rules(found) == {RESPONSE_STREAM_TEXT.name}


def test_a_stream_cut_at_its_limit_says_completed() -> None:
    events = _events(["Hi."])
    events[-1]["response"]["usage"] = {"input_tokens": 5, "output_tokens": 16, "total_tokens": 21}
    found = rc.inspect_response_stream({"max_output_tokens": 16}, _wire(events))
    assert _rules(found) == {RESPONSE_SILENT_TRUNCATION.name}


def test_plain_answers() -> None:
    assert rc.inspect_response({"max_output_tokens": 16}, _response("Hi.", "completed", 3)) == []
    assert rc.inspect_response({"max_output_tokens": 16}, _response("Hi.", "incomplete", 16)) == []
    cut = rc.inspect_response({"max_output_tokens": 16}, _response("Hi.", "completed", 16))
    assert _rules(cut) == {RESPONSE_SILENT_TRUNCATION.name}
    over = rc.inspect_response({"max_output_tokens": 16}, _response("Hi.", "incomplete", 17))
    assert _rules(over) == {RESPONSE_LIMIT.name}
    wrong = _response("Hi.")
    wrong["usage"]["total_tokens"] = 1
    assert _rules(rc.inspect_response({}, wrong)) == {RESPONSE_USAGE_ARITHMETIC.name}


def test_the_gateway_stream_shape_round_trips() -> None:
    """output_text joins message parts as the SDKs' `output_text` does."""
    assert rc.output_text(_response("abc")) == "abc"
    assert rc.output_text(orjson.loads(orjson.dumps({"output": [{"type": "function_call"}]}))) == ""


def test_a_streamed_response_is_charged_at_the_usage_of_its_terminal_event() -> None:
    from workerprobe.suite.spend import stream_usage

    wire = _wire(_events(["Hi."]))
    assert stream_usage(wire, ("input_tokens", "output_tokens")) == (5, 3)
    assert stream_usage(wire) is None  # chat's fields are not a response's
