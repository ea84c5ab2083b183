"""Exact-match response cache for deterministic chat requests.

A request is deterministic when it asks for greedy decoding (temperature 0) or fixes a seed: the
same body then gets the same answer, so it need not be generated (and paid for) twice. The key is
a digest of everything that reaches the upstream (model and the translated body) plus the stop
sequences the gateway applies. Entries live `cache_ttl_s` in the store (SQLite or Redis, shared by
replicas). `x-cache: HIT|MISS` says what happened; `Cache-Control: no-cache` skips the lookup
(the fresh answer is stored), `no-store` skips the cache entirely. A hit is replayed as a stream
when the client streams. Hits cost no neurons: they are not counted against budgets, and the
neurons they would have cost are counted as saved.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from workerprobe.gateway.store import Store

__all__ = ["CacheDecision", "ResponseCache"]

HEADER = "x-cache"


class CacheDecision:
    """Whether to look up and whether to store, from the request's Cache-Control."""

    __slots__ = ("lookup", "store")

    def __init__(self, cache_control: str | None) -> None:
        directives = {d.strip().lower() for d in (cache_control or "").split(",")}
        self.store = "no-store" not in directives
        self.lookup = self.store and "no-cache" not in directives


class ResponseCache:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.enabled = ttl_s > 0

    def key(self, model: str, body: dict[str, Any], stops: list[str], scope: str = "") -> str | None:
        """The cache key of a deterministic request, or None. `scope`: the client key's identity, so
        that one key's answers (and the fact that a prompt was asked) never reach another."""
        if not self.enabled or (body.get("temperature") != 0 and body.get("seed") is None):
            return None
        canonical = orjson.dumps(
            {"scope": scope, "model": model, "body": body, "stops": stops}, option=orjson.OPT_SORT_KEYS
        )
        return "chat:" + hashlib.sha256(canonical).hexdigest()

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.store.cache_get(key)
        if raw is None:
            return None
        entry: dict[str, Any] = orjson.loads(raw)
        return entry

    async def put(self, key: str, entry: dict[str, Any]) -> None:
        await self.store.cache_put(key, orjson.dumps(entry), self.ttl_s)
