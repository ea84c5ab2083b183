"""OpenAI invariants as schemathesis checks, each with its conformance level.

MUST: an official OpenAI client breaks or silently misbehaves when the check fails.
SHOULD: the gateway differs from OpenAI's reference behaviour without breaking a client.

The pure `inspect_*` functions hold the rules (unit-tested on their own); the registered checks
feed them a case and its response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
import schemathesis

from workerprobe.sse import Decoder, Event

__all__ = [
    "LEVELS",
    "Violation",
    "inspect_chat_completion",
    "inspect_chat_stream",
    "inspect_error",
    "inspect_list",
    "inspect_run_stream",
]

Level = Literal["MUST", "SHOULD"]

LEVELS: dict[str, Level] = {
    "openai_error_envelope": "MUST",
    "openai_chat_stream": "MUST",
    "openai_silent_truncation": "MUST",
    "openai_max_tokens_honoured": "MUST",
    "openai_n_honoured": "MUST",
    "openai_usage_arithmetic": "SHOULD",
    "openai_run_stream": "MUST",
    "openai_list_limit": "MUST",
}


class Violation(AssertionError):
    """A broken invariant; the message names the check's level."""


def _fail(check: str, message: str) -> Violation:
    return Violation(f"[{LEVELS[check]}] {message}")


# Error `type` values a client expects for each status (OpenAI's reference behaviour).
_TYPES_BY_STATUS: dict[int, set[str]] = {
    400: {"invalid_request_error"},
    401: {"invalid_request_error", "authentication_error"},
    403: {"invalid_request_error", "permission_error"},
    404: {"invalid_request_error", "not_found_error"},
    405: {"invalid_request_error"},
    409: {"invalid_request_error", "conflict_error"},
    413: {"invalid_request_error"},
    422: {"invalid_request_error"},
    429: {"requests", "tokens", "insufficient_quota", "rate_limit_error", "rate_limit_exceeded"},
}
_SERVER_TYPES = {"server_error", "api_error", "internal_error", "service_unavailable"}


def inspect_error(status: int, body: Any) -> None:
    """An error response: the OpenAI envelope, with a `type` that agrees with the status."""
    check = "openai_error_envelope"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise _fail(check, f"HTTP {status} without the OpenAI error envelope: {str(body)[:200]}")
    for field in ("message", "type", "param", "code"):
        if field not in error:
            raise _fail(check, f"HTTP {status} error envelope lacks '{field}'")
    if not isinstance(error["message"], str) or not error["message"]:
        raise _fail(check, f"HTTP {status} error has no message")
    expected = _SERVER_TYPES if status >= 500 else _TYPES_BY_STATUS.get(status)
    if expected is not None and error["type"] not in expected:
        raise _fail(check, f"HTTP {status} error has type {error['type']!r}; clients expect one of {sorted(expected)}")
    if status == 429 and error["type"] == "insufficient_quota" and error.get("code") != "insufficient_quota":
        raise _fail(check, "a quota error must carry code 'insufficient_quota' so clients stop retrying")


def _requested_limit(request: dict[str, Any]) -> int | None:
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _usage(check: str, usage: Any) -> tuple[int, int, int]:
    if not isinstance(usage, dict):
        raise _fail(check, "usage is missing")
    try:
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"]), int(usage["total_tokens"])
    except (KeyError, TypeError, ValueError):
        raise _fail(check, f"usage is malformed: {usage}") from None


def _truncation(request: dict[str, Any], completion_tokens: int, finish: Any) -> None:
    limit = _requested_limit(request)
    if limit is None:
        return
    if completion_tokens > limit:
        raise _fail("openai_max_tokens_honoured", f"{completion_tokens} completion tokens for max_tokens={limit}")
    if completion_tokens >= limit and finish == "stop":
        raise _fail(
            "openai_silent_truncation",
            f"the completion reached max_tokens={limit} but finish_reason is 'stop', not 'length'",
        )


def inspect_chat_completion(request: dict[str, Any], body: Any) -> None:
    """A non-streamed chat completion: usage arithmetic, `n`, truncation reported."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        return  # the schema check reports it
    n = request.get("n") or 1
    if isinstance(n, int) and len(choices) != n:
        raise _fail("openai_n_honoured", f"{len(choices)} choices for n={n}")
    if "usage" not in body:
        return
    prompt, completion, total = _usage("openai_usage_arithmetic", body["usage"])
    if total != prompt + completion:
        raise _fail("openai_usage_arithmetic", f"total_tokens {total} != {prompt} + {completion}")
    if choices and isinstance(choices[0], dict):
        _truncation(request, completion, choices[0].get("finish_reason"))


@dataclass
class _Stream:
    events: list[Event]
    complete: bool


def decode_stream(content: bytes) -> _Stream:
    decoder = Decoder()
    events = decoder.feed(content)
    complete = bool(content.rstrip(b"\r\n")) and content.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
    return _Stream(events + decoder.close(), complete)


def inspect_chat_stream(request: dict[str, Any], content: bytes) -> None:
    """A streamed chat completion, as the `openai` SDK reads it."""
    check = "openai_chat_stream"
    stream = decode_stream(content)
    events = stream.events
    if not events or events[-1].data != "[DONE]":
        raise _fail(check, "the stream does not end with data: [DONE]")
    if sum(e.data == "[DONE]" for e in events) != 1:
        raise _fail(check, "data: [DONE] appears more than once")
    chunks: list[dict[str, Any]] = []
    for event in events[:-1]:
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _fail(check, f"a data line is not JSON: {event.data[:120]!r}") from None
        if not isinstance(chunk, dict):
            raise _fail(check, f"a data line is not a JSON object: {event.data[:120]!r}")
        if "error" in chunk:
            if event is not events[-2]:
                raise _fail(check, "an error event is followed by more chunks")
            inspect_error(500, chunk)
            return
        chunks.append(chunk)
    if not chunks:
        raise _fail(check, "the stream has no chunks")
    first = chunks[0].get("choices") or [{}]
    if (first[0].get("delta") or {}).get("role") != "assistant":
        raise _fail(check, "the first chunk's delta does not carry role 'assistant'")
    ids = {c.get("id") for c in chunks}
    if len(ids) != 1:
        raise _fail(check, f"chunk ids change within one stream: {sorted(map(str, ids))[:3]}")
    finishes = [
        (i, choice.get("finish_reason"))
        for i, c in enumerate(chunks)
        for choice in c.get("choices") or []
        if choice.get("finish_reason") is not None
    ]
    if len(finishes) != 1:
        raise _fail(check, f"{len(finishes)} chunks carry a finish_reason; exactly one must")
    usage_chunks = [c for c in chunks if c.get("usage")]
    wants_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    if wants_usage:
        if not usage_chunks or usage_chunks[-1] is not chunks[-1] or chunks[-1].get("choices") != []:
            raise _fail(
                check, "stream_options.include_usage is set but the last chunk is not a usage chunk with choices: []"
            )
        prompt, completion, total = _usage(check, chunks[-1]["usage"])
        if total != prompt + completion:
            raise _fail("openai_usage_arithmetic", f"total_tokens {total} != {prompt} + {completion}")
        _truncation(request, completion, finishes[0][1])


_RUN_TERMINAL = ("completed", "incomplete", "failed", "cancelled", "expired", "requires_action")


def inspect_run_stream(content: bytes) -> None:
    """A streamed run, as the SDK's AssistantEventHandler reads it."""
    check = "openai_run_stream"
    events = decode_stream(content).events
    if not events:
        raise _fail(check, "the run stream is empty")
    if events[0].event != "thread.run.created":
        raise _fail(check, f"the first event is {events[0].event!r}, not 'thread.run.created'")
    if events[-1].event != "done" or events[-1].data != "[DONE]":
        raise _fail(check, "the run stream does not end with event: done / data: [DONE]")
    names = [e.event for e in events]
    if not any(name in (f"thread.run.{s}" for s in _RUN_TERMINAL) for name in names):
        raise _fail(check, "the run stream never reports a terminal run status")
    for event in events[:-1]:
        try:
            orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _fail(check, f"event {event.event!r} carries data that is not JSON") from None


def _json(response: Any) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _media(response: Any) -> str:
    values = response.headers.get("content-type") or response.headers.get("Content-Type") or [""]
    value = values[0] if isinstance(values, list) else values
    return str(value).split(";")[0].strip().lower()


def _body(case: Any) -> dict[str, Any]:
    return case.body if isinstance(case.body, dict) else {}


@schemathesis.check
def openai_error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """MUST: every error is the OpenAI envelope with a type matching its status."""
    if response.status_code >= 400:
        inspect_error(response.status_code, _json(response))
    return None


@schemathesis.check
def openai_chat(ctx: Any, response: Any, case: Any) -> bool | None:
    """MUST/SHOULD: chat completions, plain and streamed."""
    if case.operation.path != "/v1/chat/completions" or response.status_code != 200:
        return None
    if _media(response) == "text/event-stream":
        inspect_chat_stream(_body(case), response.content)
    else:
        inspect_chat_completion(_body(case), _json(response))
    return None


@schemathesis.check
def openai_runs(ctx: Any, response: Any, case: Any) -> bool | None:
    """MUST: streamed runs follow the Assistants event stream."""
    if (
        case.operation.path.endswith("/runs")
        and response.status_code == 200
        and _media(response) == "text/event-stream"
    ):
        inspect_run_stream(response.content)
    return None


_LISTS = ("/v1/assistants", "/v1/threads/{thread_id}/messages", "/v1/threads/{thread_id}/runs")


def inspect_list(limit: Any, body: Any) -> None:
    """A list page holds at most `limit` objects (20 when not given), as OpenAI's lists do."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return
    cap = limit if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 100 else 20
    if len(body["data"]) > cap:
        raise _fail("openai_list_limit", f"a list page holds {len(body['data'])} objects for limit={cap}")


@schemathesis.check
def openai_list_limit(ctx: Any, response: Any, case: Any) -> bool | None:
    """MUST: list pages honour `limit` (a paginating client silently misses objects otherwise)."""
    if case.operation.method.upper() == "GET" and case.operation.path in _LISTS and response.status_code == 200:
        query = case.query or {}
        limit = query.get("limit")
        if isinstance(limit, str) and limit.isdigit():
            limit = int(limit)
        inspect_list(limit, _json(response))
    return None
