"""The package as a user installs it: the wheel built from this checkout, installed with its suite
extra in a fresh venv outside the repository, then `workerprobe --version` and `workerprobe test`
(the embedded default) run from an empty folder, and `pytest -p workerprobe --workerprobe` from
another project's folder. Prints the time of each step; exit 0 when every step worked and the
verdict is PASS.

    .venv/bin/python bench/wheel_check.py [--keep]        (make wheel-check)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step(name: str, command: list[str], cwd: Path, timeout: float = 1800) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, text=True, capture_output=True, timeout=timeout, check=False)
    took = time.monotonic() - started
    print(f"{name}: exit {done.returncode} in {took:.0f} s", flush=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"wheel check: {name} failed")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="workerprobe-wheel-"))
    figures: dict[str, float] = {}
    try:
        dist, venv, empty, other = work / "dist", work / "venv", work / "empty", work / "other-project"
        empty.mkdir()
        other.mkdir()
        figures["build_s"] = step(
            "build the wheel", [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), "."], ROOT
        )
        (wheel,) = dist.glob("workerprobe-*.whl")
        print(f"wheel: {wheel.name}, {wheel.stat().st_size / 1024:.0f} KiB", flush=True)
        started = time.monotonic()
        step("a fresh venv", [sys.executable, "-m", "venv", str(venv)], work)
        python = venv / "bin" / "python"
        figures["install_s"] = step(
            "install it with the suite", [str(python), "-m", "pip", "install", "-q", f"{wheel}[suite]"], work
        )
        step("workerprobe --version", [str(venv / "bin" / "workerprobe"), "--version"], empty)
        figures["test_s"] = step(
            "workerprobe test (embedded default)", [str(venv / "bin" / "workerprobe"), "test"], empty
        )
        figures["venv_to_verdict_s"] = time.monotonic() - started
        summary = json.loads((empty / "reports" / "summary.json").read_text())
        print(f"verdict: {summary['verdict']} ({summary['reason']})", flush=True)
        # Another project's own test beside the suite, through the plugin's entry point.
        (other / "test_mine.py").write_text(
            "from pathlib import Path\n\n\ndef test_mine():\n    Path('mine-ran').write_text('yes')\n"
        )
        figures["plugin_s"] = step(
            "pytest -p workerprobe --workerprobe in another project",
            [str(python), "-m", "pytest", "-p", "workerprobe", "--workerprobe", "-q", "-x", "-n", "2",
             "-o", "asyncio_mode=auto", "test_mine.py"],
            other,
        )  # fmt: skip
        mine = json.loads((other / "reports" / "summary.json").read_text())
        if not (other / "mine-ran").exists():
            raise SystemExit("wheel check: the other project's own test did not run beside the suite")
        print(f"verdict in another project: {mine['verdict']} ({mine['reason']})", flush=True)
        print(json.dumps({k: round(v, 1) for k, v in figures.items()}), flush=True)
        return 0 if summary["verdict"] == "PASS" and mine["verdict"] == "PASS" else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
