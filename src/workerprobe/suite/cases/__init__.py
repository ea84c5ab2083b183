"""The suite's tests, shipped in the package: `contract/` (schemathesis over the spec) and
`scenarios/` (the official Python and Node SDKs). `workerprobe test` and
`pytest -p workerprobe --workerprobe-url URL` collect them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CASES", "CONTRACT", "SCENARIOS", "SUITE"]

CASES = Path(__file__).resolve().parent
CONTRACT = CASES / "contract"
SCENARIOS = CASES / "scenarios"
SUITE = (str(CONTRACT), str(SCENARIOS))  # what pytest collects for the suite
