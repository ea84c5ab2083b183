"""Redis store, for several gateway replicas sharing state.

    {prefix}doc:{kind}:{id}        the document (JSON)
    {prefix}idx:{kind}:{parent}    sorted set of ids by creation sequence
    {prefix}kids:{id}              the `kind:id` of documents stored under this one
    {prefix}seq                    the creation sequence
    {prefix}cache:{key}            a cached value (SET with EX)
    {prefix}count:{key}            a counter (INCRBYFLOAT; EXPIRE NX sets its life once)

Creates and deletes are MULTI/EXEC transactions; `update` is optimistic (WATCH, retry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from workerprobe.gateway.store.base import Document, Page

__all__ = ["RedisStore"]


class RedisStore:
    def __init__(self, url: str, prefix: str = "workerprobe:", max_connections: int = 32) -> None:
        self.url = url
        self.prefix = prefix
        self.max_connections = max_connections
        self._redis: aioredis.Redis | None = None

    async def open(self) -> None:
        # A bounded pool that waits for a free connection instead of failing under bursts.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=10, decode_responses=True
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        await self._redis.ping()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            await self._redis.connection_pool.disconnect()
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisStore.open() was not called")
        return self._redis

    def _doc(self, kind: str, id: str) -> str:
        return f"{self.prefix}doc:{kind}:{id}"

    def _idx(self, kind: str, parent: str | None) -> str:
        return f"{self.prefix}idx:{kind}:{parent or ''}"

    async def create(self, kind: str, doc: Document, parent: str | None = None) -> Document:
        seq = await self.redis.incr(f"{self.prefix}seq")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._doc(kind, doc["id"]), orjson.dumps(doc), nx=True)
            pipe.zadd(self._idx(kind, parent), {doc["id"]: seq})
            if parent:
                pipe.sadd(f"{self.prefix}kids:{parent}", f"{kind}:{doc['id']}")
            await pipe.execute()
        return doc

    async def _in_parent(self, kind: str, id: str, parent: str | None) -> bool:
        return await self.redis.zscore(self._idx(kind, parent), id) is not None

    async def get(self, kind: str, id: str, parent: str | None = None) -> Document | None:
        if not await self._in_parent(kind, id, parent):
            return None
        raw = await self.redis.get(self._doc(kind, id))
        return None if raw is None else orjson.loads(raw)

    async def update(
        self, kind: str, id: str, change: Callable[[Document], Document], parent: str | None = None
    ) -> Document | None:
        if not await self._in_parent(kind, id, parent):
            return None
        key = self._doc(kind, id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    doc = change(orjson.loads(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, orjson.dumps(doc))
                    await pipe.execute()
                    return doc
                except WatchError:
                    continue

    async def delete(self, kind: str, id: str, parent: str | None = None) -> bool:
        if not await self._in_parent(kind, id, parent):
            return False
        kids_key = f"{self.prefix}kids:{id}"
        kids = [str(k) for k in await self.redis.smembers(kids_key)]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._doc(kind, id))
            pipe.zrem(self._idx(kind, parent), id)
            for kid in kids:
                kid_kind, kid_id = kid.split(":", 1)
                pipe.delete(self._doc(kid_kind, kid_id))
                pipe.delete(self._idx(kid_kind, id))
            pipe.delete(kids_key)
            if parent:
                pipe.srem(f"{self.prefix}kids:{parent}", f"{kind}:{id}")
            await pipe.execute()
        return True

    async def list(
        self,
        kind: str,
        parent: str | None = None,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page:
        idx = self._idx(kind, parent)
        low: float | str = "-inf"
        high: float | str = "+inf"
        for cursor, newer in ((after, order == "asc"), (before, order == "desc")):
            if cursor is None:
                continue
            score = await self.redis.zscore(idx, cursor)
            if score is None:
                continue
            if newer:
                low = f"({score}"
            else:
                high = f"({score}"
        backwards = before is not None and after is None
        ascending = (order == "asc") != backwards
        if ascending:
            ids = await self.redis.zrangebyscore(idx, low, high, start=0, num=limit + 1)
        else:
            ids = await self.redis.zrevrangebyscore(idx, high, low, start=0, num=limit + 1)
        page_ids = ids[:limit]
        raws = await self.redis.mget([self._doc(kind, str(i)) for i in page_ids]) if page_ids else []
        docs = [orjson.loads(r) for r in raws if r is not None]
        if backwards:
            docs.reverse()
        return Page(docs, has_more=len(ids) > limit)

    async def cache_get(self, key: str) -> bytes | None:
        value = await self.redis.get(f"{self.prefix}cache:{key}")
        if value is None:
            return None
        return value if isinstance(value, bytes) else value.encode("latin-1")

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        # The connection decodes responses as text: bytes travel as latin-1, which maps 1:1.
        await self.redis.set(f"{self.prefix}cache:{key}", value.decode("latin-1"), px=max(int(ttl_s * 1000), 1))

    async def add(self, key: str, amount: float, ttl_s: float) -> float:
        name = f"{self.prefix}count:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(name, amount)
            pipe.pexpire(name, max(int(ttl_s * 1000), 1), nx=True)
            value, _ = await pipe.execute()
        return float(value)

    async def total(self, key: str) -> float:
        value = await self.redis.get(f"{self.prefix}count:{key}")
        return 0.0 if value is None else float(value)
