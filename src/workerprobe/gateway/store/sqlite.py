"""SQLite store: one file in WAL mode, so several gateway processes can share it.

Every call runs on one thread of the store's own, never on the event loop: a write lock held by
another process (or a slow disk) stalls store calls, not the gateway (`/health` keeps answering).
Each call is one statement or one `BEGIN IMMEDIATE` transaction, which serialises writers across
processes; a lock held past the busy timeout is `StoreUnavailable` (503), never a 500.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

import orjson

from workerprobe.gateway.store.base import Document, New, Page, StoreUnavailable

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    parent  TEXT NOT NULL DEFAULT '',
    body    BLOB NOT NULL,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS objects_list ON objects (kind, parent, seq);
CREATE TABLE IF NOT EXISTS cache (
    key     TEXT PRIMARY KEY,
    body    BLOB NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    key     TEXT PRIMARY KEY,
    value   REAL NOT NULL,
    expires REAL NOT NULL
);
"""


class SQLiteStore:
    def __init__(self, path: str, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        self._puts = 0

    async def _run(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except sqlite3.OperationalError as exc:  # locked or busy past the timeout, disk I/O
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def open(self) -> None:
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            return db

        self._db = await self._run(connect)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._thread, db.close)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore.open() was not called")
        return self._db

    async def ping(self) -> None:
        await self._run(lambda: self.db.execute("SELECT 1").fetchone())

    async def create(self, kind: str, doc: Document, parent: str | None = None) -> Document:
        await self.create_many([(kind, doc, parent)])
        return doc

    async def create_many(self, docs: list[New]) -> None:
        rows = [(kind, doc["id"], parent or "", orjson.dumps(doc)) for kind, doc, parent in docs]

        def insert(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO objects (kind, id, parent, body) VALUES (?, ?, ?, ?)", rows)

        if len(rows) == 1:  # one statement is a transaction of its own
            await self._run(lambda: insert(self.db))
        else:
            await self._run(lambda: self._transaction(insert))

    async def get(self, kind: str, id: str, parent: str | None = None) -> Document | None:
        row = await self._run(
            lambda: self.db.execute(
                "SELECT body FROM objects WHERE kind = ? AND id = ? AND parent = ?", (kind, id, parent or "")
            ).fetchone()
        )
        return None if row is None else orjson.loads(row[0])

    async def update(
        self, kind: str, id: str, change: Callable[[Document], Document], parent: str | None = None
    ) -> Document | None:
        def work(db: sqlite3.Connection) -> Document | None:
            row = db.execute(
                "SELECT body FROM objects WHERE kind = ? AND id = ? AND parent = ?", (kind, id, parent or "")
            ).fetchone()
            if row is None:
                return None
            doc = change(orjson.loads(row[0]))
            db.execute("UPDATE objects SET body = ? WHERE kind = ? AND id = ?", (orjson.dumps(doc), kind, id))
            return doc

        return await self._run(lambda: self._transaction(work))

    async def delete(self, kind: str, id: str, parent: str | None = None) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            gone = db.execute(
                "DELETE FROM objects WHERE kind = ? AND id = ? AND parent = ?", (kind, id, parent or "")
            ).rowcount
            if gone:
                db.execute("DELETE FROM objects WHERE parent = ?", (id,))
            return bool(gone)

        return await self._run(lambda: self._transaction(work))

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
        where = ["kind = ?", "parent = ?"]
        args: list[object] = [kind, parent or ""]
        # `after` and `before` are ids; in desc order "after" means older.
        for cursor, newer in ((after, order == "asc"), (before, order == "desc")):
            if cursor is not None:
                bound = "COALESCE((SELECT seq FROM objects WHERE kind = ? AND id = ?), -1)"
                where.append(f"seq {'>' if newer else '<'} {bound}")
                args += [kind, cursor]
        # Paging backwards (`before` alone) reads towards the cursor, then restores the order.
        backwards = before is not None and after is None
        ascending = (order == "asc") != backwards
        query = (
            f"SELECT body FROM objects WHERE {' AND '.join(where)} ORDER BY seq {'ASC' if ascending else 'DESC'} "
            "LIMIT ?"
        )
        rows = await self._run(lambda: self.db.execute(query, (*args, limit + 1)).fetchall())
        docs = [orjson.loads(r[0]) for r in rows[:limit]]
        if backwards:
            docs.reverse()
        return Page(docs, has_more=len(rows) > limit)

    async def adopt(self, kinds: tuple[str, ...], parent: str) -> int:
        marks = ", ".join("?" for _ in kinds)
        return await self._run(
            lambda: (
                self.db.execute(
                    f"UPDATE objects SET parent = ? WHERE parent = '' AND kind IN ({marks})", (parent, *kinds)
                ).rowcount
            )
        )

    async def cache_get(self, key: str) -> bytes | None:
        row = await self._run(
            lambda: self.db.execute(
                "SELECT body FROM cache WHERE key = ? AND expires > ?", (key, time.time())
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._puts += 1
        sweep = self._puts % 1000 == 0  # expired entries are dropped now and then

        def put() -> None:
            now = time.time()
            db = self.db
            db.execute("INSERT OR REPLACE INTO cache (key, body, expires) VALUES (?, ?, ?)", (key, value, now + ttl_s))
            if sweep:
                db.execute("DELETE FROM cache WHERE expires <= ?", (now,))

        await self._run(put)

    async def add(self, key: str, amount: float, ttl_s: float) -> float:
        # One statement: atomic across processes. An expired counter starts again from 0.
        def add() -> float:
            now = time.time()
            row = self.db.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
                "value = CASE WHEN expires <= ?4 THEN ?2 ELSE value + ?2 END, "
                "expires = CASE WHEN expires <= ?4 THEN ?3 ELSE expires END RETURNING value",
                (key, amount, now + ttl_s, now),
            ).fetchone()
            return float(row[0])

        return await self._run(add)

    async def total(self, key: str) -> float:
        row = await self._run(
            lambda: self.db.execute(
                "SELECT value FROM counters WHERE key = ? AND expires > ?", (key, time.time())
            ).fetchone()
        )
        return 0.0 if row is None else float(row[0])
