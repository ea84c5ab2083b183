"""Client authentication: a bearer key on every /v1 route.

Keys are `API_KEY` from the settings, or keys made with `workerprobe api-key create`, which are
stored as SHA-256 digests only (the key itself is shown once, at creation). `API_KEY` is
compared in constant time; a stored key is found by its digest. A wrong or missing key is a 401
in the OpenAI envelope with code `invalid_api_key`. Keys are never logged.

Every key belongs to a project, and stored objects to the project of the key that made them
(as OpenAI's project keys): keys made with `--project NAME` share that project; a key made
without one is a project of its own; `API_KEY` has its own (`env`), which also owns the objects
stored before projects existed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from workerprobe.gateway.store import Store
from workerprobe.gateway.store.base import Document, every

__all__ = ["ENV_PROJECT", "Identity", "KeyRing", "digest"]

ENV_PROJECT = "env"


@dataclass(frozen=True, slots=True)
class Identity:
    key: str  # the key's id ("api_key" for API_KEY): budgets, rate limits
    project: str  # whose objects it sees


_ENV = Identity("api_key", ENV_PROJECT)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The keys clients may use."""

    def __init__(self, store: Store, api_key: str | None) -> None:
        self.store = store
        self._configured = digest(api_key) if api_key else None

    async def create(self, name: str, project: str | None = None) -> tuple[str, Document]:
        key = f"sk-wp-{secrets.token_urlsafe(32)}"
        key_id = f"key_{secrets.token_hex(8)}"
        doc = {
            "id": digest(key).hex(),
            "key_id": key_id,
            "project": f"proj:{project}" if project else f"key:{key_id}",
            "name": name,
            "prefix": key[:10],
            "created_at": int(time.time()),
            "revoked_at": None,
        }
        await self.store.create("api_key", doc)
        return key, doc

    async def list(self) -> list[Document]:
        return await every(self.store, "api_key")

    async def revoke(self, key_id: str) -> bool:
        for doc in await self.list():
            if doc["key_id"] == key_id and doc["revoked_at"] is None:
                await self.store.update("api_key", doc["id"], lambda d: {**d, "revoked_at": int(time.time())})
                return True
        return False

    async def identify(self, key: str) -> Identity | None:
        """Who a key is, or None if it is not valid."""
        candidate = digest(key)
        if self._configured is not None and hmac.compare_digest(candidate, self._configured):
            return _ENV
        doc = await self.store.get("api_key", candidate.hex())
        if doc is None or doc["revoked_at"] is not None:
            return None
        key_id: str = doc["key_id"]
        return Identity(key_id, doc.get("project") or f"key:{key_id}")
