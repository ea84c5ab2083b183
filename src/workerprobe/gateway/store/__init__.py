"""Storage of the gateway's objects behind one interface: SQLite (default) or Redis."""

from __future__ import annotations

from workerprobe.gateway.store.base import Page, Store, StoreUnavailable
from workerprobe.gateway.store.redis import RedisStore
from workerprobe.gateway.store.sqlite import SQLiteStore

__all__ = ["Page", "RedisStore", "SQLiteStore", "Store", "StoreUnavailable", "open_store"]


def open_store(
    database: str, redis_url: str | None, redis_prefix: str = "workerprobe:", busy_timeout_s: float = 5.0
) -> Store:
    """Redis when a URL is given (replicas share state), else the SQLite file."""
    if redis_url:
        return RedisStore(redis_url, prefix=redis_prefix)
    return SQLiteStore(database, busy_timeout_s)
