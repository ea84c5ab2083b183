"""The free-plan pace is one schedule for all users: slots never closer than the interval, and no
catch-up burst after the generator fell behind."""

from __future__ import annotations

import pytest

from workerprobe.loadkit.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_users_share_one_schedule() -> None:
    clock = Clock()
    pacer = Pacer(5.0, clock=clock)
    # Ten users start at the same instant: their first requests are spread, 0.2 s apart.
    slots = [pacer.slot() for _ in range(10)]
    assert slots == pytest.approx([100.0 + 0.2 * i for i in range(10)])


def test_no_window_holds_more_than_the_rate() -> None:
    clock = Clock()
    pacer = Pacer(300 / 60)
    pacer.clock = clock
    slots = []
    for step in range(2000):  # users asking at uneven moments, often several at once
        clock.now += 0.05 * (step % 7 == 0)
        slots.append(pacer.slot())
    for i, start in enumerate(slots):
        within = sum(1 for s in slots[i:] if s <= start + 60.0)
        assert within <= 300 + 1  # a closed minute: both of its ends


def test_a_late_generator_does_not_burst() -> None:
    clock = Clock()
    pacer = Pacer(5.0, clock=clock)
    pacer.slot()
    clock.now += 30.0  # nobody asked for 30 s
    first, second = pacer.slot(), pacer.slot()
    assert first == clock.now and second == pytest.approx(clock.now + 0.2)


def test_workers_share_the_rate() -> None:
    pacer = Pacer(5.0, processes=2, clock=Clock())
    a, b = pacer.slot(), pacer.slot()
    assert b - a == pytest.approx(0.4)


def test_the_pace_is_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0.0)
