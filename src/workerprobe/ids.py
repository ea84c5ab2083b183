"""Cheap unique ids: a random per-process prefix and a counter (no system call per id, unlike
`uuid4`, which reads the OS's random source every time and showed up in the gateway's profile)."""

from __future__ import annotations

import itertools
import secrets

__all__ = ["unique_hex"]

_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count()


def unique_hex() -> str:
    """32 hex characters, unique within this process and, with overwhelming odds, across processes."""
    return f"{_PREFIX}{next(_COUNTER):016x}"
