"""How far the load profiles' figures are from the server's own clock, on an idle machine and with
both cores busy: `workerprobe load` against the embedded default (the emulator at TTFT 200 ms and
20 ms a token, the gateway in front; both on core 0, the load generator on core 1), and the
`accuracy` block of its summary.json (per request, matched by x-request-id with the emulator's
trace: TTFT, TPOT and ITL errors at p50 and p95). "Busy" runs one spinning process on each core,
at the same priority, for the whole run.

    .venv/bin/python bench/load_accuracy.py [--users 32] [--seconds 15] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadgen import OUT, busy_cores  # bench/loadgen.py: a script's own folder is on its path


def run(users: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        command = [
            "taskset", "-c", "1", sys.executable, "-m", "workerprobe", "load", "--embedded", "--server-cpu", "0",
            "--profile", "steady", "--classes", "StreamUser", "--users", str(users), "--seconds", str(seconds),
            "--ttft-ms", "200", "--tpot-ms", "20", "--max-tokens", "64", "--prompts", "long-answer",
            "--max-error-rate", "1", "--allow-busy-generator", "--out", out,
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary = json.loads((Path(out) / "summary.json").read_text())
    return {
        "accuracy": summary["accuracy"],
        "generator": summary.get("generator_health"),
        "requests": summary["requests"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[dict[str, Any]]] = {"idle": [], "busy": []}
    for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits both
        figures["idle"].append(run(args.users, args.seconds))
        with busy_cores((0, 1)):
            figures["busy"].append(run(args.users, args.seconds))
    print(
        f"`workerprobe load` accuracy against the emulator's clock, {args.users} streams, {args.rounds} rounds "
        "(median over the rounds, lowest-highest), ms:"
    )
    for machine, runs in figures.items():
        cells = []
        for metric in ("ttft", "tpot", "itl"):
            for q in ("error_p50", "error_p95"):
                values = [r["accuracy"][metric][q] * 1000 for r in runs if r["accuracy"].get(metric)]
                cells.append(f"{metric} {q[6:]} {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"  {machine:<5} " + "  ".join(cells))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "load-accuracy.json").write_text(json.dumps(vars(args) | figures, indent=2) + "\n")
    print(f"figures in {OUT / 'load-accuracy.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
