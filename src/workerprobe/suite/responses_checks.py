"""The Responses API's rules as schemathesis checks: a response (plain) and its event stream, as
the official SDKs read them. The levels follow what the SDKs do with each fault (registered in
`rules.py`): the Python SDK's stream helper raises `RuntimeError` when a lifecycle event changes
the response's id, an output index is added twice or a delta names an index never added, and
never returns a final response without a terminal event; both SDKs skip a `[DONE]`.

Pure `inspect_*` functions, as in `checks.py`; the check is registered on import (`contract.py`
imports this module).
"""

from __future__ import annotations

from typing import Any

import orjson
import schemathesis

from workerprobe.suite import operations
from workerprobe.suite import registry as r
from workerprobe.suite.checks import Violation, _body, _json, _raise, decode_stream, inspect_error
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

__all__ = ["inspect_response", "inspect_response_stream", "output_text"]

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_LIFECYCLE = ("response.created", "response.queued", "response.in_progress", *TERMINAL)
_CAPS = next(op.generates.caps for op in operations.load() if op.stream == "responses" and op.generates)


def output_text(response: Any) -> str:
    """The text of a response's message items, joined (the SDKs' `output_text`)."""
    out = []
    for item in (response or {}).get("output") or [] if isinstance(response, dict) else []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    out.append(part["text"])
    return "".join(out)


def _limit(request: dict[str, Any]) -> int | None:
    values = [v for v in (request.get(f) for f in _CAPS) if isinstance(v, int) and not isinstance(v, bool)]
    return max(values) if values else None


def inspect_response(request: dict[str, Any], body: Any) -> list[Violation]:
    """A whole response: usage arithmetic, and a cut answer said to be cut."""
    if not isinstance(body, dict) or not isinstance(body.get("usage"), dict):
        return []  # the schema rule reports a missing or mistyped field
    usage = body["usage"]
    try:
        given, made, total = int(usage["input_tokens"]), int(usage["output_tokens"]), int(usage["total_tokens"])
    except (KeyError, TypeError, ValueError):
        return [(RESPONSE_USAGE_ARITHMETIC, f"usage is malformed: {str(usage)[:120]}")]
    found: list[Violation] = []
    if total != given + made:
        found.append((RESPONSE_USAGE_ARITHMETIC, f"total_tokens {total} != {given} + {made}"))
    limit = _limit(request)
    if limit is None or limit < 1:
        return found
    if made > limit:
        found.append((RESPONSE_LIMIT, f"{made} output tokens for max_output_tokens={limit}"))
    elif made >= limit and body.get("status") == "completed":
        found.append(
            (
                RESPONSE_SILENT_TRUNCATION,
                f"the answer reached max_output_tokens={limit} but its status is 'completed', not 'incomplete' "
                "with incomplete_details.reason 'max_output_tokens'",
            )
        )
    return found


def _events(content: bytes) -> tuple[list[dict[str, Any]], list[Violation], int]:
    """The JSON events of a stream, what is wrong with its lines, and how many `[DONE]` lines it has."""
    found: list[Violation] = []
    events: list[dict[str, Any]] = []
    dones = 0
    for event in decode_stream(content).events:
        if event.data == "[DONE]":
            dones += 1
            continue
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            found.append((RESPONSE_STREAM_EVENTS, f"a data line is not JSON: {event.data[:120]!r}"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            found.append((RESPONSE_STREAM_EVENTS, f"a data line is not an event with a type: {event.data[:120]!r}"))
            continue
        events.append(data)
    return events, found, dones


def inspect_response_stream(request: dict[str, Any], content: bytes) -> list[Violation]:
    """A streamed response, event by event."""
    events, found, dones = _events(content)
    if dones:
        found.append(
            (RESPONSE_STREAM_DONE, f"data: [DONE] sent {dones} time(s); a response stream ends with its terminal event")
        )
    if not events:
        return [*found, (RESPONSE_STREAM_EVENTS, "the stream has no events")]
    kinds = [e["type"] for e in events]
    terminal = [i for i, kind in enumerate(kinds) if kind in TERMINAL]
    errors = [e for e in events if e["type"] == "error"]
    for error in errors[:1]:
        found += inspect_error(500, {"error": error})
    if len(terminal) != 1 or terminal[0] != len(events) - 1:
        where = "none" if not terminal else f"{len(terminal)}, the last at event {terminal[-1] + 1} of {len(events)}"
        found.append(
            (
                RESPONSE_STREAM_EVENTS,
                f"the stream must end with exactly one of {', '.join(TERMINAL)}: {where}",
            )
        )
    numbers = [n for n in (e.get("sequence_number") for e in events) if isinstance(n, int) and not isinstance(n, bool)]
    if len(numbers) != len(events):
        found.append((RESPONSE_STREAM_SEQUENCE, "an event lacks an integer sequence_number"))
    elif any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        found.append((RESPONSE_STREAM_SEQUENCE, f"sequence_number does not increase: {numbers[:8]}"))
    found += _identity(events)
    found += _texts(events)
    if terminal and events[terminal[-1]]["type"] != "response.failed":
        final = events[terminal[-1]].get("response")
        found += inspect_response(request, final)
    return found


def _identity(events: list[dict[str, Any]]) -> list[Violation]:
    found: list[Violation] = []
    ids = [
        (e["type"], (e.get("response") or {}).get("id") if isinstance(e.get("response"), dict) else None)
        for e in events
        if e["type"] in _LIFECYCLE
    ]
    if len({i for _, i in ids}) > 1:
        found.append((RESPONSE_STREAM_IDENTITY, f"the lifecycle events carry different response ids: {ids[:4]}"))
    added: dict[Any, Any] = {}
    for e in events:
        kind, index = e["type"], e.get("output_index")
        if kind == "response.output_item.added":
            if index in added:
                found.append((RESPONSE_STREAM_IDENTITY, f"output_index {index} is added twice"))
            item: dict[str, Any] = e["item"] if isinstance(e.get("item"), dict) else {}
            added[index] = item.get("id")
        elif kind.startswith("response.") and index is not None and kind not in _LIFECYCLE and index not in added:
            found.append((RESPONSE_STREAM_IDENTITY, f"{kind} for output_index {index}, which was never added"))
            break
        elif kind == "response.output_item.done":
            item = e["item"] if isinstance(e.get("item"), dict) else {}
            if item.get("id") != added.get(index):
                found.append(
                    (
                        RESPONSE_STREAM_IDENTITY,
                        f"output_item.done at index {index} has id {item.get('id')!r}, added as {added.get(index)!r}",
                    )
                )
    for e in events:
        index, named = e.get("output_index"), e.get("item_id")
        if named is not None and index in added and named != added[index]:
            found.append(
                (
                    RESPONSE_STREAM_ITEM_IDS,
                    f"{e['type']} names item {named!r}; the item added at output_index {index} is {added[index]!r}",
                )
            )
            break
    return found


def _texts(events: list[dict[str, Any]]) -> list[Violation]:
    """The deltas of each message, joined, equal its `output_text.done` text and the final response's."""
    deltas: dict[tuple[Any, Any], str] = {}
    for e in events:
        if e["type"] == "response.output_text.delta" and isinstance(e.get("delta"), str):
            key = (e.get("output_index"), e.get("content_index"))
            deltas[key] = deltas.get(key, "") + e["delta"]
    found: list[Violation] = []
    for e in events:
        if e["type"] == "response.output_text.done" and isinstance(e.get("text"), str):
            streamed = deltas.get((e.get("output_index"), e.get("content_index")), "")
            if streamed != e["text"]:
                found.append(
                    (
                        RESPONSE_STREAM_TEXT,
                        f"the deltas join to {streamed[:60]!r}, output_text.done says {e['text'][:60]!r}",
                    )
                )
                return found
    final = next((e.get("response") for e in reversed(events) if e["type"] in TERMINAL[:2]), None)
    if isinstance(final, dict) and deltas:
        order = sorted(deltas, key=lambda k: tuple(v if isinstance(v, int) else -1 for v in k))
        joined, kept = "".join(deltas[k] for k in order), output_text(final)
        if joined != kept:
            found.append(
                (
                    RESPONSE_STREAM_TEXT,
                    f"the deltas join to {joined[:60]!r}, the final response's text is {kept[:60]!r}",
                )
            )
    return found


@schemathesis.check
def openai_responses(ctx: Any, response: Any, case: Any) -> bool | None:
    """Responses, plain and streamed."""
    if r.responses_stream(case, response):
        _raise(case, inspect_response_stream(_body(case), response.content))
    elif r.responses_plain(case, response):
        _raise(case, inspect_response(_body(case), _json(response)))
    else:
        return True
    return None
