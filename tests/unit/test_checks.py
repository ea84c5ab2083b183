"""The OpenAI rules catch what they claim, every violation of a response at once, and pass what
is correct; every rule is registered once, with a level, a reason and where it applies."""

from __future__ import annotations

import pytest

from workerprobe import sse
from workerprobe.suite.checks import (
    inspect_chat_completion,
    inspect_chat_stream,
    inspect_error,
    inspect_list,
    inspect_run_stream,
    inspect_success,
)
from workerprobe.suite.registry import RULES


def _names(found: list) -> list[str]:
    return [rule.name for rule, _ in found]


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


def test_every_rule_has_a_level_a_reason_and_a_check() -> None:
    import workerprobe.suite.checks  # noqa: F401

    assert len(RULES) >= 25
    for rule in RULES.values():
        assert rule.level in ("MUST", "SHOULD") and len(rule.why) > 20 and rule.check


def test_good_streams_pass() -> None:
    assert inspect_chat_stream({}, _stream(*GOOD)) == []
    assert inspect_chat_stream({"stream_options": {"include_usage": True}}, _stream(*GOOD, USAGE)) == []
    error = {"error": {"message": "upstream broke", "type": "server_error", "param": None, "code": "upstream_error"}}
    assert inspect_chat_stream({}, _stream(GOOD[0], error)) == []


@pytest.mark.parametrize(
    ("request_body", "content", "rule"),
    [
        ({}, _stream(*GOOD, done=False), "openai_stream_done"),
        ({}, _stream(*GOOD) + sse.DONE, "openai_stream_done"),
        ({}, _stream(_chunk({"content": "x"}), GOOD[2]), "openai_stream_role"),
        ({}, _stream(GOOD[0], _chunk({"content": "x"}, id_="c2"), GOOD[2]), "openai_stream_one_id"),
        ({}, _stream(GOOD[0], GOOD[1]), "openai_stream_finish_reason"),
        ({}, _stream(GOOD[0], _chunk({}, "stop"), _chunk({}, "stop")), "openai_stream_finish_reason"),
        ({"stream_options": {"include_usage": True}}, _stream(*GOOD), "openai_stream_usage"),
        ({}, b"data: {not json\n\n" + sse.DONE, "openai_stream_json"),
        (
            {"max_tokens": 2, "stream_options": {"include_usage": True}},
            _stream(*GOOD, USAGE),
            "openai_silent_truncation",
        ),
        (
            {"max_tokens": 1, "stream_options": {"include_usage": True}},
            _stream(*GOOD, USAGE),
            "openai_max_tokens_honoured",
        ),
        ({}, _stream(*GOOD, {"choices": [], "cost": "1"}), "openai_stream_chunk_fields"),
        ({"stop": ["i"]}, _stream(*GOOD), "openai_stop_honoured"),
    ],
)
def test_bad_streams_fail(request_body: dict, content: bytes, rule: str) -> None:
    assert rule in _names(inspect_chat_stream(request_body, content))


def test_a_stream_reports_every_violation_at_once() -> None:
    bad = [_chunk({"content": "x"}), _chunk({"content": "y"}, id_="c2")]  # no role, two ids, no finish, no [DONE]
    found = _names(inspect_chat_stream({}, _stream(*bad, done=False)))
    assert {"openai_stream_done", "openai_stream_role", "openai_stream_one_id", "openai_stream_finish_reason"} <= set(
        found
    )


def _completion(finish: str, prompt: int = 3, completion: int = 2, total: int = 5, n: int = 1) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": finish}
    return {
        "choices": [choice] * n,
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total},
    }


def test_completions() -> None:
    assert inspect_chat_completion({"max_tokens": 5}, _completion("stop")) == []
    assert inspect_chat_completion({"max_tokens": 2}, _completion("length")) == []
    assert _names(inspect_chat_completion({"max_tokens": 2}, _completion("stop"))) == ["openai_silent_truncation"]
    assert inspect_chat_completion({"max_tokens": 0}, _completion("stop")) == []  # a limit OpenAI refuses
    assert _names(inspect_chat_completion({"max_completion_tokens": 1}, _completion("length"))) == [
        "openai_max_tokens_honoured"
    ]
    assert _names(inspect_chat_completion({}, _completion("stop", total=9))) == ["openai_usage_arithmetic"]
    assert _names(inspect_chat_completion({}, _completion("stop", n=2))) == ["openai_n_honoured"]
    assert _names(inspect_chat_completion({"stop": "H"}, _completion("stop"))) == ["openai_stop_honoured"]
    # Two broken rules in one answer: both are named.
    assert set(_names(inspect_chat_completion({"max_tokens": 2}, _completion("stop", n=2, total=1)))) == {
        "openai_n_honoured",
        "openai_usage_arithmetic",
        "openai_silent_truncation",
    }


def test_errors() -> None:
    assert (
        inspect_error(400, {"error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}})
        == []
    )
    quota = {"error": {"message": "q", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
    assert inspect_error(429, quota) == []
    assert inspect_error(502, {"error": {"message": "up", "type": "server_error", "param": None, "code": None}}) == []
    for status, body, rules in [
        (401, {"error": "Unauthorized"}, {"openai_error_envelope"}),
        (400, {"detail": "bad"}, {"openai_error_envelope"}),
        (400, {"error": {"message": "bad", "type": "invalid_request_error", "code": None}}, {"openai_error_fields"}),
        (
            429,
            {"error": {"message": "slow", "type": "server_error", "param": None, "code": None}},
            {"openai_error_type"},
        ),
        (
            500,
            {"error": {"message": "boom", "type": "invalid_request_error", "param": None, "code": None}},
            {"openai_error_type"},
        ),
        (
            429,
            {"error": {"message": "q", "type": "insufficient_quota", "param": None, "code": None}},
            {"openai_quota_code"},
        ),
        # Every field of one body: the missing param and code, and the wrong type.
        (401, {"error": {"message": "no", "type": "server_error"}}, {"openai_error_fields", "openai_error_type"}),
    ]:
        assert set(_names(inspect_error(status, body))) == rules, body


def test_a_success_is_not_an_error() -> None:
    assert inspect_success({"object": "list", "data": []}) == []
    assert _names(inspect_success({"error": {"message": "upstream failed"}})) == ["openai_success_is_not_an_error"]


def _run_events(*names: str, done: bool = True) -> bytes:
    body = b"".join(sse.encode_json({"id": "run_1"}, event=name) for name in names)
    return body + (sse.encode("[DONE]", event="done") if done else b"")


def test_run_streams() -> None:
    assert inspect_run_stream(_run_events("thread.run.created", "thread.message.delta", "thread.run.completed")) == []
    for bad in (
        _run_events("thread.run.in_progress", "thread.run.completed"),
        _run_events("thread.run.created", "thread.run.completed", done=False),
        _run_events("thread.run.created", "thread.message.delta"),
    ):
        assert _names(inspect_run_stream(bad)) == ["openai_run_stream"]


def test_list_limit() -> None:
    assert inspect_list(2, {"data": [1, 2]}) == []
    assert inspect_list(None, {"data": list(range(20))}) == []
    assert "limit=2" in inspect_list(2, {"data": [1, 2, 3]})[0][1]
    assert "limit=20" in inspect_list(None, {"data": list(range(21))})[0][1]


def test_acceptance_of_valid_data_leaves_out_only_refusals_openai_makes_too() -> None:
    from types import SimpleNamespace

    from workerprobe.suite.registry import positive_within_window

    def case(mode: str) -> SimpleNamespace:
        return SimpleNamespace(meta=SimpleNamespace(generation=SimpleNamespace(mode=mode)))

    def answer(status: int, body: bytes) -> SimpleNamespace:
        return SimpleNamespace(status_code=status, content=body)

    window = b'{"error": {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}'
    other = b'{"error": {"message": "bad", "type": "invalid_request_error", "code": null}}'
    applies = positive_within_window
    assert RULES["positive_data_acceptance"].applies is applies
    assert not applies(case("positive"), answer(400, window))  # a model-dependent limit: not judged
    assert applies(case("positive"), answer(400, other))  # any other 400 for valid data is judged
    assert applies(case("positive"), answer(400, b"not json")) and applies(case("positive"), answer(400, b"[]"))
    assert applies(case("positive"), answer(200, b"{}"))
    assert not applies(case("negative"), answer(400, other))
    busy = b'{"error": {"message": "Thread thread_1 already has an active run run_2.", "type": "x"}}'
    assert not applies(case("positive"), answer(400, busy))  # OpenAI's own answer to a thread's state
    assert applies(case("positive"), answer(500, busy)) and applies(case("positive"), answer(400, window[:-1]))
