"""One pace for every user of a load process: the free plan's 300 text-generation requests a
minute hold for the whole run, not per user.

Each request takes the next slot of the process's one schedule, `interval` after the one before.
A generator that falls behind starts at once and does not catch up with a burst, so no 60-second
window ever holds more than `rate * 60 + 1` slots. With Locust workers each process paces its
share of the rate (`processes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    def __init__(self, per_second: float, processes: int = 1, clock: Callable[[], float] = time.perf_counter):
        if per_second <= 0:
            raise ValueError("the pace must be positive")
        self.interval = max(processes, 1) / per_second
        self.clock = clock
        self._next: float | None = None

    def slot(self) -> float:
        """When the caller's next request is due (on `clock`); the slot after it is one interval later."""
        now = self.clock()
        due = now if self._next is None or self._next < now else self._next
        self._next = due + self.interval
        return due
