"""Which gateway process executes which run, and whether it is still alive.

Each process beats (`alive:<instance>` in the store, three beats' life) and records the process
that executes each run (`run-worker:<run>`, written before the run can be read). A run whose
process no longer beats was left by a process that died: whichever replica reads it fails it.
"""

from __future__ import annotations

import asyncio
import logging

from workerprobe.gateway.store import Store
from workerprobe.ids import unique_hex

__all__ = ["Liveness"]

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, store: Store, heartbeat_s: float, claim_s: float) -> None:
        self.store = store
        self.heartbeat_s = heartbeat_s
        self.claim_s = claim_s
        self.instance = unique_hex()
        self._beating: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._beat()
        self._beating = asyncio.create_task(self._beat_forever())

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            self._beating = None

    async def _beat(self) -> None:
        await self.store.cache_put(f"alive:{self.instance}", b"1", self.heartbeat_s * 3)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._beat()
            except Exception:  # the store is down: beat again next time
                log.warning("heartbeat not stored", exc_info=True)

    async def claim(self, run_id: str) -> None:
        """This process executes the run (before the run, or its continuation, can be read)."""
        await self.store.cache_put(f"run-worker:{run_id}", self.instance.encode(), self.claim_s)

    async def orphaned(self, run_id: str) -> bool:
        """Whether no living gateway process executes this run."""
        worker = await self.store.cache_get(f"run-worker:{run_id}")
        if worker is not None and worker.decode() == self.instance:
            return False
        return worker is None or await self.store.cache_get(f"alive:{worker.decode()}") is None
