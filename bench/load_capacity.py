"""How many concurrent streams one Locust worker measures before its own CPU distorts TTFT.

The emulator (TTFT 200 ms, 50 ms per token, 32-token answers) and the gateway run on core 0;
one Locust process (load/run.py, StreamUser) runs on core 1. For each number of users, the
median TTFT it measures is compared with the same measurement at 10 users (the baseline, where
the worker is idle); distortion = median / baseline - 1. Target: >= 300 streams within 5%.

    .venv/bin/python bench/load_capacity.py [--users 10 100 200 300 400 500] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(users: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            "taskset",
            "-c",
            "1",
            sys.executable,
            str(ROOT / "load" / "run.py"),
            "--embedded",
            "--server-cpu",
            "0",
            "--classes",
            "StreamUser",
            "--users",
            str(users),
            "--seconds",
            str(seconds),
            "--emulator-latency",
            "zero",
            "--ttft-ms",
            "200",
            "--tpot-ms",
            "50",
            "--out",
            out,
            "--max-tokens",
            "32",
            "--max-error-rate",
            "-1",  # a measurement, not a gate: the error rate is reported, not judged
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 180)
        return json.loads((Path(out) / "summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[10, 100, 200, 300, 400, 500])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    print("servers on core 0, one Locust process on core 1; emulator TTFT 200 ms, 50 ms/token, 32 tokens")
    baseline = None
    best = 0
    for users in args.users:
        summary = measure(users, args.seconds)
        ttft = summary["ttft_s"]
        p50 = ttft["p50"] * 1000
        baseline = baseline or p50
        distortion = p50 / baseline - 1
        if distortion <= 0.05:
            best = users
        print(
            f"{users:4d} streams: {summary['requests']:6d} requests, TTFT p50 {p50:7.1f} ms, p95 "
            f"{ttft['p95'] * 1000:7.1f} ms, TPOT p50 {summary['tpot_s']['p50'] * 1000:6.1f} ms, "
            f"distortion {distortion * 100:+5.1f}%, failures {summary['failures']}"
        )
    print(
        f"largest measured concurrency within 5% of the baseline TTFT: {best} streams "
        f"(target >= 300: {'met' if best >= 300 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
