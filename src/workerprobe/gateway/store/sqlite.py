"""SQLite store: one file in WAL mode, so several gateway processes can share it.

Calls are short and run on the event loop's thread: each is one statement or one `BEGIN
IMMEDIATE` transaction, which serialises writers across processes (busy timeout 5 s).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
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
"""


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
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
