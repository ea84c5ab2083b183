"""Faults on demand: by header, by trigger phrase, and by seeded rates."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import TEXT_MODEL, Emulator, error_of


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("3040", 429, 3040),
        ("3021", 429, 3021),
        ("4006", 429, 4006),
        ("3036", 429, 3036),
        ("5xx", 503, 7009),
        ("500", 500, 3043),
        ("502", 502, 7010),
        ("503", 503, 7009),
        ("504", 504, 7011),
        ("timeout", 408, 3046),
    ],
)
def test_error_fault_by_header(emulator: Emulator, fault: str, status: int, code: int) -> None:
    got = error_of(emulator.run(TEXT_MODEL, {"prompt": "hi"}, **{"x-emulate-fault": fault}))
    assert got[:2] == (status, code)


def test_error_fault_on_streams_and_embeddings(emulator: Emulator) -> None:
    response = emulator.run(TEXT_MODEL, {"prompt": "hi", "stream": True}, **{"x-emulate-fault": "3040"})
    assert error_of(response) == (429, 3040, "Capacity temporarily exceeded, please try again.")
    assert emulator.run("@cf/baai/bge-base-en-v1.5", {"text": "hi"}, **{"x-emulate-fault": "3040"}).status_code == 429


def test_fault_by_trigger_phrase(emulator: Emulator) -> None:
    body = {"messages": [{"role": "user", "content": "please fail EMULATE_FAULT:3021 now"}]}
    assert error_of(emulator.run(TEXT_MODEL, body))[:2] == (429, 3021)


def test_unknown_fault_is_bad_input(emulator: Emulator) -> None:
    assert error_of(emulator.run(TEXT_MODEL, {"prompt": "hi"}, **{"x-emulate-fault": "nope"}))[:2] == (400, 5006)


def test_fault_rates_are_seeded_and_deterministic(start_emulator) -> None:
    env = {"WORKERPROBE_EMULATOR_FAULT_RATES": '{"3040": 0.1}', "WORKERPROBE_EMULATOR_FAULT_SEED": "42"}
    runs = []
    for _ in range(2):
        with start_emulator(**env) as emulator:
            runs.append([emulator.run(TEXT_MODEL, {"prompt": "hi"}).status_code for _ in range(400)])
    assert runs[0] == runs[1]
    failures = runs[0].count(429)
    assert 20 <= failures <= 60  # 10% of 400, within a wide binomial margin
    assert set(runs[0]) == {200, 429}
