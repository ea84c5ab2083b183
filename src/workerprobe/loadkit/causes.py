"""Every failed request gets one cause. The four HTTP 429s of Workers AI mean different things
(the daily allocation is spent until 00:00 UTC; the per-minute limit wants a back-off; capacity
is transient; a gateway's own limit is the gateway's), so they are told apart by the body's code
and message, in either envelope (OpenAI's `error` or Cloudflare's `errors[]`).

A stream that arrived whole, held back on the way (`buffered`, timing.buffered), is a failure of
its own: the client asked for a stream and got one answer late; its TTFT would be the end to end."""

from __future__ import annotations

from typing import Any, Literal, get_args

__all__ = ["CAUSES", "FATAL", "Cause", "classify"]

Cause = Literal[
    "daily_quota",
    "rate_limit",
    "capacity",
    "gateway_429",
    "upstream_5xx",
    "gateway_5xx",
    "cut_stream",
    "buffered",
    "malformed",
    "timeout_total",
    "timeout_stall",
    "too_large",
    "auth",
    "connection",
    "client_error",
]
# Causes that say the run cannot work at all (a wrong key, nothing listening): a run whose first
# requests all fail with one of these stops at once instead of measuring refusals.
FATAL: frozenset[Cause] = frozenset({"auth", "connection"})
CAUSES: tuple[Cause, ...] = get_args(Cause)


def _codes(body: Any) -> tuple[str, str, str]:
    """(code, type, message) from an OpenAI or a Cloudflare error body."""
    if not isinstance(body, dict):
        return "", "", str(body or "")
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("type") or ""), str(error.get("message") or "")
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code") or ""), "", str(errors[0].get("message") or "")
    return "", "", str(error or "")


def classify(status: int, body: Any) -> Cause:
    code, kind, message = _codes(body)
    text = message.lower()
    if status == 429:
        if (
            code in ("insufficient_quota", "4006", "3036")
            or kind == "insufficient_quota"
            or "daily free allocation" in text
        ):
            return "daily_quota"
        if code == "3021" or "per min rate" in text:
            return "rate_limit"
        if code in ("3040", "capacity_exceeded") or "capacity" in text:
            return "capacity"
        return "gateway_429"
    if status in (401, 403):
        return "auth"
    if status in (502, 503, 504, 408):
        return "upstream_5xx"
    if status >= 500:
        return "gateway_5xx"
    return "client_error"
