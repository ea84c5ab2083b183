"""OpenAI invariants as schemathesis checks. Each rule is registered once, in
`workerprobe.suite.registry`, with its level and the client behaviour behind it.

The pure `inspect_*` functions hold the rules (unit-tested on their own) and return every
violation of a response; the registered checks feed them a case and its response and raise all
of them at once (a `FailureGroup`), so that one broken field never hides another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import schemathesis
from schemathesis.core.failures import FailureGroup

from workerprobe.sse import Decoder, Event
from workerprobe.suite import operations
from workerprobe.suite import registry as r
from workerprobe.suite.registry import Finding, Rule
from workerprobe.suite.rules import (
    ERROR_ENVELOPE,
    ERROR_FIELDS,
    ERROR_TYPE,
    LIST_LIMIT,
    MAX_TOKENS,
    N_HONOURED,
    QUOTA_CODE,
    RUN_STREAM,
    SILENT_TRUNCATION,
    STOP_HONOURED,
    STREAM_CHUNK_FIELDS,
    STREAM_DONE,
    STREAM_ERROR_LAST,
    STREAM_FINISH,
    STREAM_ID,
    STREAM_JSON,
    STREAM_ROLE,
    STREAM_USAGE,
    SUCCESS_NOT_ERROR,
    USAGE_ARITHMETIC,
)

__all__ = [
    "Violation",
    "inspect_chat_completion",
    "inspect_chat_stream",
    "inspect_error",
    "inspect_list",
    "inspect_run_stream",
    "inspect_success",
]

Violation = tuple[Rule, str]

# Error `type` values OpenAI's API answers with, by status: it uses invalid_request_error for 401
# and 404 too (not Anthropic's authentication_error or not_found_error).
_TYPES_BY_STATUS: dict[int, set[str]] = {
    400: {"invalid_request_error"},
    401: {"invalid_request_error"},
    403: {"invalid_request_error", "permission_error"},
    404: {"invalid_request_error"},
    405: {"invalid_request_error"},
    409: {"invalid_request_error", "conflict_error"},
    413: {"invalid_request_error"},
    422: {"invalid_request_error"},
    429: {"requests", "tokens", "insufficient_quota", "rate_limit_error", "rate_limit_exceeded"},
}
_SERVER_TYPES = {"server_error", "api_error", "internal_error", "service_unavailable"}


def inspect_error(status: int, body: Any) -> list[Violation]:
    """An error response: the OpenAI envelope, with a `type` that agrees with the status."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return [(ERROR_ENVELOPE, f"HTTP {status} without the OpenAI error envelope: {str(body)[:200]}")]
    found: list[Violation] = []
    if not isinstance(error.get("message"), str) or not error["message"]:
        found.append((ERROR_ENVELOPE, f"HTTP {status} error has no message"))
    missing = [f for f in ("type", "param", "code") if f not in error]
    if missing:
        found.append((ERROR_FIELDS, f"HTTP {status} error envelope lacks {', '.join(repr(m) for m in missing)}"))
    expected = _SERVER_TYPES if status >= 500 else _TYPES_BY_STATUS.get(status)
    if "type" in error and expected is not None and error["type"] not in expected:
        found.append(
            (ERROR_TYPE, f"HTTP {status} error has type {error['type']!r}; clients expect one of {sorted(expected)}")
        )
    quota = (
        "insufficient_quota" in (str(error.get("type")), str(error.get("code")))
        or "quota" in str(error.get("message", "")).lower()
    )
    if status == 429 and quota and error.get("code") != "insufficient_quota":
        found.append((QUOTA_CODE, "a quota 429 must carry code 'insufficient_quota' so clients stop retrying"))
    return found


def inspect_success(body: Any) -> list[Violation]:
    """A 2xx body is never an error object."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict | str) and "object" not in body:
        return [(SUCCESS_NOT_ERROR, f"a 2xx answer whose body is an error: {str(body)[:200]}")]
    return []


# The fields that cap a chat completion (the spec's operation facts).
_CHAT_CAPS = next(op.generates.caps for op in operations.load() if op.stream == "chat" and op.generates)


def _requested_limit(request: dict[str, Any], caps: tuple[str, ...] = _CHAT_CAPS) -> int | None:
    """The token limit asked for. With two (`max_tokens` and `max_completion_tokens`: OpenAI itself
    refuses the pair), either may be the one a server reads: the larger is judged, never a false alarm."""
    limits = [v for v in (request.get(f) for f in caps) if isinstance(v, int) and not isinstance(v, bool)]
    return max(limits) if limits else None


def _usage(usage: Any) -> tuple[int, int, int] | str:
    if not isinstance(usage, dict):
        return "usage is missing"
    try:
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"]), int(usage["total_tokens"])
    except (KeyError, TypeError, ValueError):
        return f"usage is malformed: {str(usage)[:120]}"


def _truncation(request: dict[str, Any], completion_tokens: int, finish: Any) -> list[Violation]:
    limit = _requested_limit(request)
    if limit is None or limit < 1:
        return []  # no limit, or one OpenAI refuses (its minimum is 1): what was served says nothing of it
    if completion_tokens > limit:
        return [(MAX_TOKENS, f"{completion_tokens} completion tokens for max_tokens={limit}")]
    if completion_tokens >= limit and finish == "stop":
        return [
            (
                SILENT_TRUNCATION,
                f"the completion reached max_tokens={limit} but finish_reason is 'stop', not 'length'",
            )
        ]
    return []


def _arithmetic(usage: Any) -> tuple[list[Violation], int | None]:
    parsed = _usage(usage)
    if isinstance(parsed, str):
        return [(USAGE_ARITHMETIC, parsed)], None
    prompt, completion, total = parsed
    if total != prompt + completion:
        return [(USAGE_ARITHMETIC, f"total_tokens {total} != {prompt} + {completion}")], completion
    return [], completion


def _stops(request: dict[str, Any]) -> list[str]:
    stop = request.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    return [s for s in stops if isinstance(s, str) and s]


def _stop(request: dict[str, Any], texts: list[Any]) -> list[Violation]:
    stops = _stops(request)
    for text in texts:
        hit = next((s for s in stops if isinstance(text, str) and s in text), None)
        if hit is not None:
            return [(STOP_HONOURED, f"the text holds the stop sequence {hit!r}: {text[:80]!r}")]
    return []


def inspect_chat_completion(request: dict[str, Any], body: Any) -> list[Violation]:
    """A non-streamed chat completion: `n`, usage arithmetic, truncation reported."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        return []  # the schema rule reports it
    found: list[Violation] = []
    n = request.get("n") or 1
    if isinstance(n, int) and not isinstance(n, bool) and len(choices) != n:
        found.append((N_HONOURED, f"{len(choices)} choices for n={n}"))
    found += _stop(request, [(c.get("message") or {}).get("content") for c in choices if isinstance(c, dict)])
    if "usage" not in body:
        return found
    arithmetic, completion = _arithmetic(body["usage"])
    found += arithmetic
    if completion is not None and choices and isinstance(choices[0], dict):
        found += _truncation(request, completion, choices[0].get("finish_reason"))
    return found


@dataclass
class _Stream:
    events: list[Event]
    complete: bool


def decode_stream(content: bytes) -> _Stream:
    decoder = Decoder()
    events = decoder.feed(content)
    complete = bool(content.rstrip(b"\r\n")) and content.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
    return _Stream(events + decoder.close(), complete)


def _stream_chunks(events: list[Event]) -> tuple[list[dict[str, Any]], list[Violation], bool]:
    chunks: list[dict[str, Any]] = []
    found: list[Violation] = []
    errored = False
    data = [e for e in events if e.data != "[DONE]"]
    for i, event in enumerate(data):
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            found.append((STREAM_JSON, f"a data line is not JSON: {event.data[:120]!r}"))
            continue
        if not isinstance(chunk, dict):
            found.append((STREAM_JSON, f"a data line is not a JSON object: {event.data[:120]!r}"))
            continue
        if "error" in chunk:
            errored = True
            if i != len(data) - 1:
                found.append((STREAM_ERROR_LAST, "an error event is followed by more chunks"))
            found += inspect_error(500, chunk)
            continue
        chunks.append(chunk)
    return chunks, found, errored


def inspect_chat_stream(request: dict[str, Any], content: bytes) -> list[Violation]:
    """A streamed chat completion, as the `openai` SDK reads it."""
    events = decode_stream(content).events
    found: list[Violation] = []
    dones = sum(e.data == "[DONE]" for e in events)
    if not events or events[-1].data != "[DONE]":
        found.append((STREAM_DONE, "the stream does not end with data: [DONE]"))
    if dones > 1:
        found.append((STREAM_DONE, "data: [DONE] appears more than once"))
    chunks, violations, errored = _stream_chunks(events)
    found += violations
    if errored:
        return found
    if not chunks:
        return [*found, (STREAM_JSON, "the stream has no chunks")]
    first = chunks[0].get("choices") or [{}]
    if not isinstance(first[0], dict) or (first[0].get("delta") or {}).get("role") != "assistant":
        found.append((STREAM_ROLE, "the first chunk's delta does not carry role 'assistant'"))
    incomplete = [
        c
        for c in chunks
        if c.get("object") != "chat.completion.chunk" or not all(k in c for k in ("id", "created", "model"))
    ]
    if incomplete:
        sample = {k: incomplete[0].get(k) for k in ("id", "object", "created", "model")}
        found.append(
            (
                STREAM_CHUNK_FIELDS,
                f"{len(incomplete)} chunk(s) lack id/object/created/model or say another object: {sample}",
            )
        )
    texts: dict[int, str] = {}
    for c in chunks:
        for choice in c.get("choices") or []:
            if isinstance(choice, dict):
                piece = (choice.get("delta") or {}).get("content")
                if isinstance(piece, str):
                    texts[choice.get("index", 0)] = texts.get(choice.get("index", 0), "") + piece
    found += _stop(request, list(texts.values()))
    ids = {str(c.get("id")) for c in chunks}
    if len(ids) != 1:
        found.append((STREAM_ID, f"chunk ids change within one stream: {sorted(ids)[:3]}"))
    finishes = [
        choice.get("finish_reason")
        for c in chunks
        for choice in c.get("choices") or []
        if isinstance(choice, dict) and choice.get("finish_reason") is not None
    ]
    n = request.get("n") if isinstance(request.get("n"), int) else 1
    if len(finishes) != (n or 1):
        found.append((STREAM_FINISH, f"{len(finishes)} chunks carry a finish_reason; exactly {n or 1} must"))
    if bool((request.get("stream_options") or {}).get("include_usage")):
        last = chunks[-1]
        if not last.get("usage") or last.get("choices") != []:
            found.append(
                (
                    STREAM_USAGE,
                    "stream_options.include_usage is set but the last chunk is not a usage chunk with choices: []",
                )
            )
        else:
            arithmetic, completion = _arithmetic(last["usage"])
            found += arithmetic
            if completion is not None and finishes:
                found += _truncation(request, completion, finishes[0])
    return found


_RUN_TERMINAL = ("completed", "incomplete", "failed", "cancelled", "expired", "requires_action")


def inspect_run_stream(content: bytes) -> list[Violation]:
    """A streamed run, as the SDK's AssistantEventHandler reads it."""
    events = decode_stream(content).events
    if not events:
        return [(RUN_STREAM, "the run stream is empty")]
    found: list[Violation] = []
    if events[0].event != "thread.run.created":
        found.append((RUN_STREAM, f"the first event is {events[0].event!r}, not 'thread.run.created'"))
    if events[-1].event != "done" or events[-1].data != "[DONE]":
        found.append((RUN_STREAM, "the run stream does not end with event: done / data: [DONE]"))
    names = [e.event for e in events]
    if not any(name in (f"thread.run.{s}" for s in _RUN_TERMINAL) for name in names):
        found.append((RUN_STREAM, "the run stream never reports a terminal run status"))
    for event in events[:-1]:
        try:
            orjson.loads(event.data)
        except orjson.JSONDecodeError:
            found.append((RUN_STREAM, f"event {event.event!r} carries data that is not JSON"))
            break
    return found


def inspect_list(limit: Any, body: Any) -> list[Violation]:
    """A list page holds at most `limit` objects (20 when not given), as OpenAI's lists do."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return []
    cap = limit if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 100 else 20
    if len(body["data"]) > cap:
        return [(LIST_LIMIT, f"a list page holds {len(body['data'])} objects for limit={cap}")]
    return []


# --- the registered checks ---------------------------------------------------------------------


def _json(response: Any) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _body(case: Any) -> dict[str, Any]:
    return case.body if isinstance(case.body, dict) else {}


def _raise(case: Any, found: list[Violation]) -> None:
    if not found:
        return None
    label = case.operation.label
    failures = [Finding(rule, message, operation=label) for rule, message in found]
    if len(failures) == 1:
        raise failures[0]
    raise FailureGroup(failures)


@schemathesis.check
def openai_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is the OpenAI envelope, with a type and code that agree with its status."""
    if response.status_code < 400:
        return True
    _raise(case, inspect_error(response.status_code, _json(response)))
    return None


@schemathesis.check
def openai_success(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 2xx is never an error in disguise."""
    if not 200 <= response.status_code < 300 or r.media(response) == "text/event-stream":
        return True
    _raise(case, inspect_success(_json(response)))
    return None


@schemathesis.check
def openai_chat(ctx: Any, response: Any, case: Any) -> bool | None:
    """Chat completions, plain and streamed."""
    if r.chat_stream(case, response):
        _raise(case, inspect_chat_stream(_body(case), response.content))
    elif r.chat_plain(case, response):
        _raise(case, inspect_chat_completion(_body(case), _json(response)))
    else:
        return True
    return None


@schemathesis.check
def openai_runs(ctx: Any, response: Any, case: Any) -> bool | None:
    """Streamed runs follow the Assistants event stream."""
    if not r.run_stream(case, response):
        return True
    _raise(case, inspect_run_stream(response.content))
    return None


@schemathesis.check
def openai_lists(ctx: Any, response: Any, case: Any) -> bool | None:
    """List pages honour `limit`."""
    if not r.list_page(case, response):
        return True
    limit = (case.query or {}).get("limit")
    if isinstance(limit, str) and limit.isdigit():
        limit = int(limit)
    _raise(case, inspect_list(limit, _json(response)))
    return None
