"""The OpenAI checks catch what they claim (and pass what is correct)."""

from __future__ import annotations

import pytest

from workerprobe import sse
from workerprobe.suite.checks import (
    Violation,
    inspect_chat_completion,
    inspect_chat_stream,
    inspect_error,
    inspect_run_stream,
)


def _chunk(delta: dict, finish: str | None = None, id_: str = "c1", **extra: object) -> dict:
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def _stream(*chunks: dict, done: bool = True) -> bytes:
    body = b"".join(sse.encode_json(c) for c in chunks)
    return body + (sse.DONE if done else b"")


GOOD = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hi"}), _chunk({}, "stop")]
USAGE = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_good_streams_pass() -> None:
    inspect_chat_stream({}, _stream(*GOOD))
    inspect_chat_stream({"stream_options": {"include_usage": True}}, _stream(*GOOD, USAGE))
    error = {"error": {"message": "upstream broke", "type": "server_error", "param": None, "code": "upstream_error"}}
    inspect_chat_stream({}, _stream(GOOD[0], error))


@pytest.mark.parametrize(
    ("request_body", "content", "needle"),
    [
        ({}, _stream(*GOOD, done=False), "[DONE]"),
        ({}, _stream(*GOOD) + sse.DONE, "more than once"),
        ({}, _stream(_chunk({"content": "x"}), GOOD[2]), "role"),
        ({}, _stream(GOOD[0], _chunk({"content": "x"}, id_="c2"), GOOD[2]), "ids change"),
        ({}, _stream(GOOD[0], GOOD[1]), "exactly one"),
        ({}, _stream(GOOD[0], _chunk({}, "stop"), _chunk({}, "stop")), "exactly one"),
        ({"stream_options": {"include_usage": True}}, _stream(*GOOD), "usage chunk"),
        ({}, b"data: {not json\n\n" + sse.DONE, "not JSON"),
        ({"max_tokens": 2, "stream_options": {"include_usage": True}}, _stream(*GOOD, USAGE), "'length'"),
        ({"max_tokens": 1, "stream_options": {"include_usage": True}}, _stream(*GOOD, USAGE), "max_tokens=1"),
    ],
)
def test_bad_streams_fail(request_body: dict, content: bytes, needle: str) -> None:
    with pytest.raises(Violation, match="MUST") as caught:
        inspect_chat_stream(request_body, content)
    assert needle in str(caught.value)


def _completion(finish: str, prompt: int = 3, completion: int = 2, total: int = 5, n: int = 1) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": finish}
    return {
        "choices": [choice] * n,
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total},
    }


def test_completions() -> None:
    inspect_chat_completion({"max_tokens": 5}, _completion("stop"))
    inspect_chat_completion({"max_tokens": 2}, _completion("length"))
    with pytest.raises(Violation, match=r"\[MUST\].*'length'"):
        inspect_chat_completion({"max_tokens": 2}, _completion("stop"))
    with pytest.raises(Violation, match=r"\[MUST\].*max_tokens=1"):
        inspect_chat_completion({"max_completion_tokens": 1}, _completion("length"))
    with pytest.raises(Violation, match=r"\[SHOULD\].*total_tokens"):
        inspect_chat_completion({}, _completion("stop", total=9))
    with pytest.raises(Violation, match=r"\[MUST\].*n=1"):
        inspect_chat_completion({}, _completion("stop", n=2))


def test_errors() -> None:
    inspect_error(400, {"error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}})
    inspect_error(
        429, {"error": {"message": "q", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
    )
    inspect_error(502, {"error": {"message": "up", "type": "server_error", "param": None, "code": None}})
    for status, body in [
        (401, {"error": "Unauthorized"}),
        (400, {"detail": "bad"}),
        (400, {"error": {"message": "bad", "type": "invalid_request_error", "code": None}}),
        (429, {"error": {"message": "slow", "type": "server_error", "param": None, "code": None}}),
        (500, {"error": {"message": "boom", "type": "invalid_request_error", "param": None, "code": None}}),
        (429, {"error": {"message": "q", "type": "insufficient_quota", "param": None, "code": None}}),
    ]:
        with pytest.raises(Violation):
            inspect_error(status, body)


def _run_events(*names: str, done: bool = True) -> bytes:
    body = b"".join(sse.encode_json({"id": "run_1"}, event=name) for name in names)
    return body + (sse.encode("[DONE]", event="done") if done else b"")


def test_run_streams() -> None:
    inspect_run_stream(_run_events("thread.run.created", "thread.message.delta", "thread.run.completed"))
    for bad in (
        _run_events("thread.run.in_progress", "thread.run.completed"),
        _run_events("thread.run.created", "thread.run.completed", done=False),
        _run_events("thread.run.created", "thread.message.delta"),
    ):
        with pytest.raises(Violation):
            inspect_run_stream(bad)


def test_list_limit() -> None:
    from workerprobe.suite.checks import inspect_list

    inspect_list(2, {"data": [1, 2]})
    inspect_list(None, {"data": list(range(20))})
    with pytest.raises(Violation, match=r"\[MUST\].*limit=2"):
        inspect_list(2, {"data": [1, 2, 3]})
    with pytest.raises(Violation, match="limit=20"):
        inspect_list(None, {"data": list(range(21))})
