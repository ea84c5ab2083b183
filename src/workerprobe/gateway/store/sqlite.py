"""SQLite store: one file in WAL mode, so several gateway processes can share it.

Calls are short and run on the event loop's thread: each is one statement or one `BEGIN
IMMEDIATE` transaction, which serialises writers across processes (busy timeout 5 s).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import orjson

from workerprobe.gateway.store.base import Document, Page

__all__ = ["SQLiteStore"]

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
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._puts = 0

    async def open(self) -> None:
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore.open() was not called")
        return self._db

    async def create(self, kind: str, doc: Document, parent: str | None = None) -> Document:
        self.db.execute(
            "INSERT INTO objects (kind, id, parent, body) VALUES (?, ?, ?, ?)",
            (kind, doc["id"], parent or "", orjson.dumps(doc)),
        )
        return doc

    async def get(self, kind: str, id: str, parent: str | None = None) -> Document | None:
        row = self.db.execute(
            "SELECT body FROM objects WHERE kind = ? AND id = ? AND parent = ?", (kind, id, parent or "")
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    async def update(
        self, kind: str, id: str, change: Callable[[Document], Document], parent: str | None = None
    ) -> Document | None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT body FROM objects WHERE kind = ? AND id = ? AND parent = ?", (kind, id, parent or "")
            ).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            doc = change(orjson.loads(row[0]))
            db.execute("UPDATE objects SET body = ? WHERE kind = ? AND id = ?", (orjson.dumps(doc), kind, id))
            db.execute("COMMIT")
            return doc
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def delete(self, kind: str, id: str, parent: str | None = None) -> bool:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = db.execute(
                "DELETE FROM objects WHERE kind = ? AND id = ? AND parent = ?", (kind, id, parent or "")
            ).rowcount
            if gone:
                db.execute("DELETE FROM objects WHERE parent = ?", (id,))
            db.execute("COMMIT")
            return bool(gone)
        except BaseException:
            db.execute("ROLLBACK")
            raise

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
        rows = self.db.execute(
            f"SELECT body FROM objects WHERE {' AND '.join(where)} ORDER BY seq {'ASC' if ascending else 'DESC'} "
            "LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        docs = [orjson.loads(r[0]) for r in rows[:limit]]
        if backwards:
            docs.reverse()
        return Page(docs, has_more=len(rows) > limit)

    async def cache_get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT body FROM cache WHERE key = ? AND expires > ?", (key, time.time())).fetchone()
        return None if row is None else bytes(row[0])

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        now = time.time()
        db = self.db
        db.execute("INSERT OR REPLACE INTO cache (key, body, expires) VALUES (?, ?, ?)", (key, value, now + ttl_s))
        self._puts += 1
        if self._puts % 1000 == 0:  # expired entries are dropped now and then
            db.execute("DELETE FROM cache WHERE expires <= ?", (now,))

    async def add(self, key: str, amount: float, ttl_s: float) -> float:
        # One statement: atomic across processes. An expired counter starts again from 0.
        now = time.time()
        row = self.db.execute(
            "INSERT INTO counters (key, value, expires) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
            "value = CASE WHEN expires <= ?4 THEN ?2 ELSE value + ?2 END, "
            "expires = CASE WHEN expires <= ?4 THEN ?3 ELSE expires END RETURNING value",
            (key, amount, now + ttl_s, now),
        ).fetchone()
        return float(row[0])

    async def total(self, key: str) -> float:
        row = self.db.execute("SELECT value FROM counters WHERE key = ? AND expires > ?", (key, time.time())).fetchone()
        return 0.0 if row is None else float(row[0])
