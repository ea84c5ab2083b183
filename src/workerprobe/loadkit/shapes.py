"""Load shapes, chosen by name (`--load-profile`): each `tick()` gives (users, spawn rate) or None to stop.

steady     a constant number of users
step       a concurrency sweep: users rise by a step every `--step-seconds`
burst      quiet, a burst, quiet again
soak       steady and long (bounded by --run-time all the same)
free-plan  paced to the free plan: at most 300 text-generation requests a minute in total
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    users: int
    seconds: float
    step: int = 1
    step_seconds: float = 10.0

    def steady(self, t: float) -> tuple[int, float] | None:
        return (self.users, float(self.users)) if t < self.seconds else None

    def step_sweep(self, t: float) -> tuple[int, float] | None:
        if t >= self.seconds:
            return None
        level = min(self.users, self.step * (1 + int(t // self.step_seconds)))
        return level, float(self.step * 10)

    def burst(self, t: float) -> tuple[int, float] | None:
        if t >= self.seconds:
            return None
        third = self.seconds / 3
        quiet = max(1, self.users // 10)
        return (self.users, float(self.users * 5)) if third <= t < 2 * third else (quiet, float(self.users))


PROFILES = ("steady", "step", "burst", "soak", "free-plan")


def plan(profile: str, p: Plan, t: float) -> tuple[int, float] | None:
    if profile in ("steady", "soak", "free-plan"):
        return p.steady(t)
    if profile == "step":
        return p.step_sweep(t)
    if profile == "burst":
        return p.burst(t)
    raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
