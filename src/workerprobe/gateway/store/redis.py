"""Redis store, for several gateway replicas sharing state.

    {prefix}doc:{kind}:{id}        the document (JSON)
    {prefix}idx:{kind}:{parent}    sorted set of ids by creation sequence
    {prefix}kids:{id}              the `kind:id` of documents stored under this one
    {prefix}seq                    the creation sequence
    {prefix}cache:{key}            a cached value (SET with EX)
    {prefix}count:{key}            a counter (INCRBYFLOAT; EXPIRE NX sets its life once)

Creates are one Lua script: the sequence is taken and the document indexed in one atomic step,
so the order of the sequence is the order in which documents become visible (a poller reading
`after=<last id>` through one replica never skips a document another replica wrote). Deletes are
MULTI/EXEC transactions; `update` is optimistic (WATCH, retry). A Redis that does not answer is
`StoreUnavailable` (503).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Literal, ParamSpec, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ResponseError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workerprobe.gateway.store.base import Document, New, Page, StoreUnavailable

__all__ = ["RedisStore"]

P = ParamSpec("P")
R = TypeVar("R")

# KEYS: the sequence, then per document its key, its index and its parent's set of children.
# ARGV: per document its JSON, its id and its `kind:id` (empty without a parent).
_CREATE = """
local n = #ARGV / 3
for i = 0, n - 1 do
  if redis.call('EXISTS', KEYS[2 + 3 * i]) == 1 then
    return redis.error_reply('EXISTS ' .. ARGV[2 + 3 * i])
  end
end
for i = 0, n - 1 do
  local seq = redis.call('INCR', KEYS[1])
  redis.call('SET', KEYS[2 + 3 * i], ARGV[1 + 3 * i])
  redis.call('ZADD', KEYS[3 + 3 * i], seq, ARGV[2 + 3 * i])
  if ARGV[3 + 3 * i] ~= '' then
    redis.call('SADD', KEYS[4 + 3 * i], ARGV[3 + 3 * i])
  end
end
return n
"""

# KEYS: the index without a parent, the parent's index, the parent's children. ARGV: the kind.
_ADOPT = """
local moved = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #moved, 2 do
  redis.call('ZADD', KEYS[2], moved[i + 1], moved[i])
  redis.call('SADD', KEYS[3], ARGV[1] .. ':' .. moved[i])
end
redis.call('DEL', KEYS[1])
return #moved / 2
"""

_DOWN = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)


def _guarded(call: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Redis not answering becomes `StoreUnavailable`."""

    @functools.wraps(call)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await call(*args, **kwargs)
        except _DOWN as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}") from exc

    return guarded


class RedisStore:
    def __init__(self, url: str, prefix: str = "workerprobe:", max_connections: int = 32) -> None:
        self.url = url
        self.prefix = prefix
        self.max_connections = max_connections
        self._redis: aioredis.Redis | None = None

    async def open(self) -> None:
        # A bounded pool that waits for a free connection instead of failing under bursts.
        # A Redis that does not answer is a 503 within about a second, not after redis-py's
        # default retries (exponential backoff up to 10 s, three times); once it is back, the
        # next request reconnects.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=5,
            decode_responses=True,
            socket_connect_timeout=1,
            socket_timeout=5,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._create: Any = self._redis.register_script(_CREATE)
        self._adopt: Any = self._redis.register_script(_ADOPT)
        await self.ping()

    @_guarded
    async def ping(self) -> None:
        await self.redis.ping()

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
        await self.create_many([(kind, doc, parent)])
        return doc

    @_guarded
    async def create_many(self, docs: list[New]) -> None:
        keys = [f"{self.prefix}seq"]
        args: list[str | bytes] = []
        for kind, doc, parent in docs:
            keys += [self._doc(kind, doc["id"]), self._idx(kind, parent), f"{self.prefix}kids:{parent or ''}"]
            args += [orjson.dumps(doc), doc["id"], f"{kind}:{doc['id']}" if parent else ""]
        try:
            await self._create(keys=keys, args=args)
        except ResponseError as exc:
            raise ValueError(f"not created: {exc}") from None

    @_guarded
    async def adopt(self, kinds: tuple[str, ...], parent: str) -> int:
        moved = 0
        for kind in kinds:
            keys = [self._idx(kind, None), self._idx(kind, parent), f"{self.prefix}kids:{parent}"]
            moved += int(await self._adopt(keys=keys, args=[kind]))
        return moved

    async def _in_parent(self, kind: str, id: str, parent: str | None) -> bool:
        return await self.redis.zscore(self._idx(kind, parent), id) is not None

    @_guarded
    async def get(self, kind: str, id: str, parent: str | None = None) -> Document | None:
        if not await self._in_parent(kind, id, parent):
            return None
        raw = await self.redis.get(self._doc(kind, id))
        return None if raw is None else orjson.loads(raw)

    @_guarded
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

    @_guarded
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

    @_guarded
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

    @_guarded
    async def cache_get(self, key: str) -> bytes | None:
        value = await self.redis.get(f"{self.prefix}cache:{key}")
        if value is None:
            return None
        return value if isinstance(value, bytes) else value.encode("latin-1")

    @_guarded
    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        # The connection decodes responses as text: bytes travel as latin-1, which maps 1:1.
        await self.redis.set(f"{self.prefix}cache:{key}", value.decode("latin-1"), px=max(int(ttl_s * 1000), 1))

    @_guarded
    async def add(self, key: str, amount: float, ttl_s: float) -> float:
        name = f"{self.prefix}count:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(name, amount)
            pipe.pexpire(name, max(int(ttl_s * 1000), 1), nx=True)
            value, _ = await pipe.execute()
        return float(value)

    @_guarded
    async def total(self, key: str) -> float:
        value = await self.redis.get(f"{self.prefix}count:{key}")
        return 0.0 if value is None else float(value)
