"""Free-plan limits: neuron metering per account and UTC day, and per-minute request limits.

Both read time from a `Clock`, which tests move (through the emulator's test-mode endpoint) to
cross midnight or a minute without waiting.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Clock", "Meter", "RateLimiter"]


class Clock:
    """Wall-clock time plus an adjustable offset (zero outside tests)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC).date()

    def set(self, when: dt.datetime) -> None:
        self.offset = when.timestamp() - time.time()

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class _ModelUsage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    neurons: float = 0.0


@dataclass
class _AccountDay:
    neurons: float = 0.0
    requests: int = 0
    errors: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    models: dict[str, _ModelUsage] = field(default_factory=lambda: defaultdict(_ModelUsage))


class Meter:
    """Neurons and requests per account per UTC day; the allocation resets at 00:00 UTC."""

    def __init__(self, clock: Clock, daily_neurons: float | None) -> None:
        self.clock = clock
        self.daily_neurons = daily_neurons
        self._days: dict[tuple[str, dt.date], _AccountDay] = defaultdict(_AccountDay)

    def exhausted(self, account: str) -> bool:
        if self.daily_neurons is None:
            return False
        return self._days[(account, self.clock.today())].neurons >= self.daily_neurons

    def record(self, account: str, model: str, input_tokens: int, output_tokens: int, neurons: float) -> None:
        day = self._days[(account, self.clock.today())]
        day.neurons += neurons
        day.requests += 1
        usage = day.models[model]
        usage.requests += 1
        usage.input_tokens += input_tokens
        usage.output_tokens += output_tokens
        usage.neurons += neurons

    def record_error(self, account: str, code: int) -> None:
        self._days[(account, self.clock.today())].errors[code] += 1

    def report(self, day: dt.date | None = None) -> dict[str, Any]:
        day = day or self.clock.today()
        accounts = {
            account: {
                "neurons": round(usage.neurons, 6),
                "requests": usage.requests,
                "remaining_neurons": (
                    None if self.daily_neurons is None else round(max(0.0, self.daily_neurons - usage.neurons), 6)
                ),
                "errors": {str(code): n for code, n in sorted(usage.errors.items())},
                "models": {
                    name: {
                        "requests": m.requests,
                        "input_tokens": m.input_tokens,
                        "output_tokens": m.output_tokens,
                        "neurons": round(m.neurons, 6),
                    }
                    for name, m in sorted(usage.models.items())
                },
            }
            for (account, when), usage in self._days.items()
            if when == day
        }
        return {"date": day.isoformat(), "daily_neurons": self.daily_neurons, "accounts": accounts}

    def reset(self) -> None:
        self._days.clear()


class RateLimiter:
    """Requests per rolling minute per (account, rate-limit class): a sliding log."""

    WINDOW = 60.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._log: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def acquire(self, account: str, limit_class: str, per_minute: int) -> float | None:
        """Take a slot; None when granted, else the seconds until one frees up."""
        now = self.clock.now()
        log = self._log[(account, limit_class)]
        while log and log[0] <= now - self.WINDOW:
            log.popleft()
        if len(log) >= per_minute:
            return log[0] + self.WINDOW - now
        log.append(now)
        return None

    def reset(self) -> None:
        self._log.clear()
