"""The SSE codec: WHATWG parsing rules, and reads split at every possible byte."""

from __future__ import annotations

import pytest

from workerprobe.sse import DONE, Decoder, Event, comment, encode, encode_json


def _decode(*chunks: bytes) -> list[Event]:
    decoder = Decoder()
    events = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events + decoder.close()


STREAM = (
    b'data: {"response":"caf\xc3\xa9"}\r\n\r\n'
    b": ping\n\n"
    b'event: thread.message.delta\ndata: {"a":1}\n\n'
    b"data: line one\rdata: line two\r\r"
    b"id: 7\nretry: 1500\ndata:no-space\n\n" + DONE
)
EXPECTED = [
    Event('{"response":"café"}'),
    Event('{"a":1}', event="thread.message.delta"),
    Event("line one\nline two"),
    Event("no-space", id="7", retry=1500),
    Event("[DONE]", id="7", retry=1500),
]


def test_whole_stream() -> None:
    assert _decode(STREAM) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    assert _decode(STREAM[:cut], STREAM[cut:]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    assert _decode(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_unterminated_event_is_dropped_at_close() -> None:
    assert _decode(b"data: a\n\ndata: b") == [Event("a")]


def test_bom_comments_and_empty_data() -> None:
    assert _decode(b"\xef\xbb\xbfdata: x\n\n: comment only\n\nevent: e\n\n") == [Event("x")]


def test_encoders_round_trip() -> None:
    wire = encode("two\nlines", event="e", id="1") + encode_json({"k": "v"}) + encode_json([1], event="x") + comment()
    assert _decode(wire) == [
        Event("two\nlines", event="e", id="1"),
        Event('{"k":"v"}', id="1"),
        Event("[1]", event="x", id="1"),
    ]


def test_event_json() -> None:
    assert Event('{"a": [1]}').json() == {"a": [1]}
