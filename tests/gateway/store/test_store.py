"""Both stores against the real thing: a SQLite file and the Redis server at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import AsyncIterator

import pytest

from workerprobe.gateway.store import RedisStore, SQLiteStore, Store

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(str(tmp_path / "store.sqlite3"))
    else:
        s = RedisStore(REDIS_URL, prefix=f"wp-test-{uuid.uuid4().hex}:")
    await s.open()
    yield s
    if isinstance(s, RedisStore):
        keys = [k async for k in s.redis.scan_iter(match=f"{s.prefix}*")]
        if keys:
            await s.redis.delete(*keys)
    await s.close()


async def test_crud(store: Store) -> None:
    await store.create("assistant", {"id": "asst_1", "name": "a"})
    assert await store.get("assistant", "asst_1") == {"id": "asst_1", "name": "a"}
    assert await store.get("assistant", "nope") is None
    updated = await store.update("assistant", "asst_1", lambda d: {**d, "name": "b"})
    assert updated == {"id": "asst_1", "name": "b"} == await store.get("assistant", "asst_1")
    assert await store.update("assistant", "nope", lambda d: d) is None
    assert await store.delete("assistant", "asst_1") is True
    assert await store.get("assistant", "asst_1") is None
    assert await store.delete("assistant", "asst_1") is False


async def test_parents_scope_and_cascade(store: Store) -> None:
    await store.create("thread", {"id": "t1"})
    await store.create("thread", {"id": "t2"})
    await store.create("message", {"id": "m1"}, parent="t1")
    await store.create("run", {"id": "r1"}, parent="t1")
    assert await store.get("message", "m1", parent="t2") is None  # wrong thread
    assert (await store.get("message", "m1", parent="t1")) == {"id": "m1"}
    assert await store.delete("thread", "t1")
    assert await store.get("message", "m1", parent="t1") is None
    assert (await store.list("message", "t1")).data == []
    assert (await store.list("run", "t1")).data == []
    assert await store.get("thread", "t2") == {"id": "t2"}


async def test_pagination(store: Store) -> None:
    for i in range(7):
        await store.create("assistant", {"id": f"a{i}"})

    def ids(page) -> list[str]:
        return [d["id"] for d in page.data]

    first = await store.list("assistant", limit=3)
    assert ids(first) == ["a6", "a5", "a4"] and first.has_more
    assert first.body()["first_id"] == "a6" and first.body()["last_id"] == "a4"
    second = await store.list("assistant", limit=3, after="a4")
    assert ids(second) == ["a3", "a2", "a1"] and second.has_more
    last = await store.list("assistant", limit=3, after="a1")
    assert ids(last) == ["a0"] and not last.has_more
    back = await store.list("assistant", limit=2, before="a3")
    assert ids(back) == ["a5", "a4"]
    asc = await store.list("assistant", limit=4, order="asc")
    assert ids(asc) == ["a0", "a1", "a2", "a3"] and asc.has_more
    assert ids(await store.list("assistant", order="asc", after="a3", before="a6")) == ["a4", "a5"]
    assert ids(await store.list("assistant", order="asc", limit=2, before="a3")) == ["a1", "a2"]
    empty = await store.list("assistant", parent="none")
    assert empty.body() == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


async def test_concurrent_appends_lose_nothing(store: Store) -> None:
    await store.create("thread", {"id": "t"})
    await asyncio.gather(*(store.create("message", {"id": f"m{i}", "n": i}, parent="t") for i in range(200)))
    page = await store.list("message", "t", limit=1000, order="asc")
    assert sorted(d["n"] for d in page.data) == list(range(200))


def _write_many(kind: str, target: str, what: str, n: int) -> None:
    """In a process of its own: `n` updates of the counter document, or `n` additions to a counter."""

    async def go() -> None:
        store: Store = SQLiteStore(target) if kind == "sqlite" else RedisStore(REDIS_URL, prefix=target)
        await store.open()
        for _ in range(n):
            if what == "update":
                await store.update("counter", "c", lambda d: {**d, "n": d["n"] + 1})
            else:
                await store.add("shared", 1.0, ttl_s=600)
        await store.close()

    asyncio.run(go())


def _in_two_processes(store: Store, what: str, n: int) -> None:
    target = store.path if isinstance(store, SQLiteStore) else store.prefix  # type: ignore[union-attr]
    kind = "sqlite" if isinstance(store, SQLiteStore) else "redis"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(kind, target, what, n)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


async def test_concurrent_writers_in_separate_processes(store: Store) -> None:
    """Two processes update one document 100 times each: no update is lost."""
    await store.create("counter", {"id": "c", "n": 0})
    _in_two_processes(store, "update", 100)
    assert (await store.get("counter", "c")) == {"id": "c", "n": 200}


async def test_a_failed_change_changes_nothing(store: Store) -> None:
    await store.create("assistant", {"id": "x", "v": 1})

    def boom(doc: dict) -> dict:
        raise ValueError("bad change")

    with pytest.raises(ValueError):
        await store.update("assistant", "x", boom)
    assert await store.get("assistant", "x") == {"id": "x", "v": 1}
    await store.create("assistant", {"id": "y"})  # the store still works


async def test_cache_values_expire(store: Store) -> None:
    value = bytes(range(256))  # every byte value survives the round trip
    await store.cache_put("k", value, ttl_s=60)
    assert await store.cache_get("k") == value
    assert await store.cache_get("other") is None
    await store.cache_put("short", b"x", ttl_s=0.05)
    await asyncio.sleep(0.1)
    assert await store.cache_get("short") is None


async def test_counters_add_atomically_and_expire(store: Store) -> None:
    await asyncio.gather(*(store.add("spent", 1.5, ttl_s=60) for _ in range(200)))
    assert await store.total("spent") == pytest.approx(300.0)
    assert await store.add("spent", 0.5, ttl_s=60) == pytest.approx(300.5)
    assert await store.total("missing") == 0.0
    await store.add("brief", 2.0, ttl_s=0.05)
    await asyncio.sleep(0.1)
    assert await store.total("brief") == 0.0
    assert await store.add("brief", 1.0, ttl_s=60) == pytest.approx(1.0)  # starts again from 0


async def test_counters_shared_by_processes_lose_nothing(store: Store) -> None:
    _in_two_processes(store, "add", 200)
    assert await store.total("shared") == pytest.approx(400.0)
