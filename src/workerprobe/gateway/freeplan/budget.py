"""Neuron budgets per UTC day, and per-key request rate limits.

Neurons are counted from each answer's usage and the catalogue's prices, in the store's atomic
counters (so replicas sharing Redis share the budget): in total, per client key and per model.
A request is refused with 429 `insufficient_quota` before it reaches the upstream once a budget
it falls under is spent, so the gateway stops short of the upstream's own 4006 refusal. What
is left goes back in `x-workerprobe-neurons-remaining` (the smaller of the total and the key's).

Per-key rate limits use the `limits` library (moving window), in memory or in Redis.
"""

from __future__ import annotations

import datetime as dt
import math
import time

import redis.asyncio as aioredis
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from workerprobe.catalogue import Model
from workerprobe.gateway.errors import QuotaExceeded, RateLimited
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.store import Store
from workerprobe.settings import GatewaySettings

__all__ = ["Budgets", "KeyRateLimiter", "REMAINING_HEADER"]

REMAINING_HEADER = "x-workerprobe-neurons-remaining"


def _day() -> tuple[str, float]:
    """Today's UTC date, and the seconds its counters must live (until an hour after midnight)."""
    now = dt.datetime.now(dt.UTC)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return now.date().isoformat(), (tomorrow - now).total_seconds() + 3600


class Budgets:
    def __init__(self, store: Store, settings: GatewaySettings, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.total = settings.daily_neurons
        self.per_key = settings.key_daily_neurons
        self.per_model = settings.model_daily_neurons
        self.enabled = bool(self.total or self.per_key or self.per_model)

    def _keys(self, key: str, model: str | None) -> dict[str, tuple[str, float | None]]:
        day, _ = _day()
        keys = {
            "total": (f"neurons:{day}", self.total),
            "key": (f"neurons:{day}:key:{key}", self.per_key),
        }
        if model is not None:
            keys["model"] = (f"neurons:{day}:model:{model}", self.per_model.get(model))
        return keys

    async def remaining(self, key: str, model: str | None = None) -> dict[str, float]:
        """What is left of each budget that applies (total, key, model)."""
        out = {}
        for scope, (counter, budget) in self._keys(key, model).items():
            if budget is not None:
                out[scope] = budget - await self.store.total(counter)
        if "total" in out:
            self.metrics.budget_remaining["total"] = max(out["total"], 0.0)
        return out

    async def admit(self, key: str, model: str) -> tuple[dict[str, str], bool]:
        """Headers stating what is left, and whether the model's own budget is spent; raises
        QuotaExceeded when the total or the key's budget is."""
        if not self.enabled:
            return {}, False
        left = await self.remaining(key, model)
        for scope, what in (("total", "the gateway's daily neuron budget"), ("key", "this key's daily neuron budget")):
            if scope in left and left[scope] <= 0:
                self.metrics.method("budget", f"refused_{scope}")
                raise QuotaExceeded(
                    f"{what} is spent ({self.total if scope == 'total' else self.per_key:g} neurons per UTC day); "
                    "it resets at 00:00 UTC"
                )
        return self.headers(left), left.get("model", 1.0) <= 0

    def headers(self, left: dict[str, float]) -> dict[str, str]:
        shown = [v for scope, v in left.items() if scope != "model"]
        return {REMAINING_HEADER: f"{max(min(shown), 0.0):.2f}"} if shown else {}

    async def settle(self, key: str, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        """An answer's usage: in the metrics, and charged to the budgets that apply."""
        self.metrics.usage(model, prompt_tokens, completion_tokens)
        await self.spend(key, model, prompt_tokens, completion_tokens)

    async def spend(self, key: str, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        if not self.enabled:
            return
        neurons = model.neurons(prompt_tokens, completion_tokens)
        if neurons <= 0:
            return
        _, ttl = _day()
        for scope, (counter, budget) in self._keys(key, model.name).items():
            if budget is not None:
                value = await self.store.add(counter, neurons, ttl)
                if scope == "total":
                    self.metrics.budget_remaining["total"] = max(budget - value, 0.0)


class KeyRateLimiter:
    """`key_rate_limit` (e.g. "10/second;300/minute") per client key, moving window."""

    def __init__(self, spec: str, redis_url: str | None, prefix: str) -> None:
        self.items: list[RateLimitItem] = parse_many(spec)
        storage: Storage
        self._pool: aioredis.ConnectionPool | None = None
        if redis_url:
            # Our own pool, so that closing the gateway closes its connections.
            self._pool = aioredis.ConnectionPool.from_url(redis_url.removeprefix("async+"))
            uri = "async+" + redis_url.removeprefix("async+")
            storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix=f"{prefix}ratelimit",
                connection_pool=self._pool,  # type: ignore[arg-type]  # documented, typed narrowly
            )
        else:
            storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()

    async def hit(self, key: str) -> None:
        """Count a request; raises RateLimited (with Retry-After) when a limit is reached."""
        for item in self.items:
            if not await self.limiter.hit(item, "key", key):
                stats = await self.limiter.get_window_stats(item, "key", key)
                wait = max(math.ceil(stats.reset_time - time.time()), 1)
                raise RateLimited(
                    f"Rate limit reached for this key: {item} (per-key limit of this gateway)",
                    headers={
                        "retry-after": str(wait),
                        "x-ratelimit-limit-requests": str(item.amount),
                        "x-ratelimit-remaining-requests": "0",
                    },
                )
