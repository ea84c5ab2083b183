"""Whose fault a failure is, and what it is: the object in an answer whose data broke its schema,
a value returned as the request sent it, and what an error answer that explains nothing is."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["OF_A_SERVER_ERROR", "body_kind", "culprit", "echoed", "json_body", "without_sent"]


def json_body(response: Any) -> Any:
    """The JSON body of an answer that says it is JSON (None otherwise)."""
    if "json" not in str(response.headers.get("content-type") or ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


# What a server error's answer also breaks: its cause is the server error (one finding for one fact).
OF_A_SERVER_ERROR = frozenset(
    {"openai_error_envelope", "openai_error_fields", "openai_error_type", "content_type_conformance"}
)


def body_kind(response: Any) -> str:
    """What an error answer that explains nothing is: its Content-Type, or that it is empty."""
    if not response.content:
        return "an empty body"
    kind = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    return f"a {kind or 'body without Content-Type'} page, not the OpenAI error envelope"


def echoed(sent: Any, failure: Any) -> bool:
    """Whether the value that broke the response's schema is the one the request sent at the same
    place (an assistant created with `"temperature": "AAA"` returned as it was sent)."""
    path, value = getattr(failure, "instance_path", None), getattr(failure, "instance", None)
    if not isinstance(path, list) or not path or not isinstance(sent, dict):
        return False
    node: Any = sent
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False
    return bool(node == value and type(node) is type(value))


def culprit(response: Any, failure: Any) -> str | None:
    """The id of the object in the answer whose data broke the response's schema: the innermost
    object with an `id` on the failure's path (`data[3]` of a list)."""
    path = getattr(failure, "instance_path", None)
    if not isinstance(path, list) or not 200 <= response.status_code < 300:
        return None
    node, found = json_body(response), None
    for step in [None, *path]:
        if step is not None:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found = node["id"]
    return found


def _leaves(value: Any) -> list[str]:
    """The request's values as an answer may quote them back: each scalar as JSON and as Python
    writes it, and each list and object as Python writes it ("[None, None]")."""
    if isinstance(value, dict):
        found = [repr(value)] if value else []
        return found + [text for item in value.values() for text in _leaves(item)]
    if isinstance(value, list):
        return [repr(value), *(text for item in value for text in _leaves(item))]
    if isinstance(value, bool) or value is None:
        return [repr(value)]
    return [str(value)]


def without_sent(said: str, sent: Any) -> str:
    """What an answer says with the request's own values taken out ("Unsupported response_format
    type - AAA" and "... - False" say one thing): values of three characters or more, and any
    list, object, boolean, null or number, the longest first."""
    numbers = {str(v) for v in _numbers(sent)}
    found = {text for text in _leaves(sent) if len(text) >= 3 or text in ("[]", "{}") or text in numbers}
    for text in sorted(found, key=len, reverse=True):
        said = re.sub(rf"(?<![\w.]){re.escape(text)}(?![\w.])", "…", said)  # whole words only
    return said


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []
