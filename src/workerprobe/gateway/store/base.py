"""The store interface: JSON documents by kind and id, optionally under a parent (a thread's
messages and runs), listed in creation order with OpenAI's cursor pagination.

Beside the documents: a cache of byte values with a time to live, and counters (floats) that
concurrent writers add to atomically, for the free-plan methods (response cache, neuron budgets).

Every write is atomic: an object is stored whole or not at all, `create_many` stores all of its
objects or none, and `update` applies its change to the latest stored version (concurrent writers
never lose each other's changes). A document becomes visible to `list` in the order of its
creation sequence (a poller paging with `after` never skips one).

A store that cannot answer (Redis down, SQLite locked past its busy timeout) raises
`StoreUnavailable`: the gateway answers 503 and loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Document", "New", "Page", "Store", "StoreUnavailable", "every"]

Document = dict[str, Any]
New = tuple[str, Document, str | None]
"""A document to create: its kind, the document, its parent."""


class StoreUnavailable(Exception):
    """The store did not answer (connection refused, timed out, locked past the busy timeout)."""


@dataclass(frozen=True, slots=True)
class Page:
    data: list[Document]
    has_more: bool

    def body(self) -> Document:
        return {
            "object": "list",
            "data": self.data,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
            "has_more": self.has_more,
        }


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""
        ...

    async def create(self, kind: str, doc: Document, parent: str | None = None) -> Document:
        """Store a new document (its `id` must be new)."""
        ...

    async def create_many(self, docs: list[New]) -> None:
        """Store several new documents, all of them or none."""
        ...

    async def get(self, kind: str, id: str, parent: str | None = None) -> Document | None: ...

    async def update(
        self, kind: str, id: str, change: Callable[[Document], Document], parent: str | None = None
    ) -> Document | None:
        """Replace a document by `change(current)`, atomically; None if it does not exist."""
        ...

    async def delete(self, kind: str, id: str, parent: str | None = None) -> bool:
        """Delete a document and everything stored under it."""
        ...

    async def list(
        self,
        kind: str,
        parent: str | None = None,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page: ...

    async def adopt(self, kinds: tuple[str, ...], parent: str) -> int:
        """Give the documents of these kinds that have no parent this one (a migration); how many."""
        ...

    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, unless it is missing or has expired."""
        ...

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def add(self, key: str, amount: float, ttl_s: float) -> float:
        """Add to a counter atomically (created at 0, dropped `ttl_s` after its creation); the new value."""
        ...

    async def total(self, key: str) -> float:
        """A counter's value (0 when missing or expired)."""
        ...


async def every(
    store: Store, kind: str, parent: str | None = None, order: Literal["asc", "desc"] = "asc"
) -> list[Document]:
    """All documents of a kind (under `parent`), page by page."""
    out: list[Document] = []
    after: str | None = None
    while True:
        page = await store.list(kind, parent, limit=100, order=order, after=after)
        out.extend(page.data)
        if not page.has_more or not page.data:
            return out
        after = page.data[-1]["id"]
