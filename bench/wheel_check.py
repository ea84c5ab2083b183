"""The package as a user installs it: the wheel and sdist built from this checkout by the standard
build frontend (`python -m build`) and checked as a package index checks them (`twine check`),
the wheel installed with its suite extra in a fresh venv outside the repository, then
`workerprobe --version` and `workerprobe test` (the embedded default) run from an empty folder
(its reports in reports/<run id>/, reports/latest, junit.xml), and `pytest -p workerprobe
--workerprobe` from another project's folder whose configuration is pytest's default (so
pytest-asyncio's strict mode) and again with `asyncio_mode=auto`, with no warning of the suite's in
its output. Prints the time of each step; exit 0 when every step worked and the verdict is PASS.

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


OUTPUT: dict[str, str] = {}


def step(name: str, command: list[str], cwd: Path, timeout: float = 1800) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, text=True, capture_output=True, timeout=timeout, check=False)
    took = time.monotonic() - started
    print(f"{name}: exit {done.returncode} in {took:.0f} s", flush=True)
    OUTPUT[name] = done.stdout + done.stderr
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"wheel check: {name} failed")
    return took


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Warning" in line or "warnings summary" in line]


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
            "build the wheel and sdist", [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], work
        )
        (wheel,) = dist.glob("workerprobe-*.whl")
        (sdist,) = dist.glob("workerprobe-*.tar.gz")
        print(f"wheel: {wheel.name}, {wheel.stat().st_size / 1024:.0f} KiB; sdist: {sdist.name}", flush=True)
        step("twine check (as a package index checks them)", [sys.executable, "-m", "twine", "check", "--strict",
             str(wheel), str(sdist)], work)  # fmt: skip
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
        summary = json.loads((empty / "reports" / "latest" / "summary.json").read_text())
        if not (empty / "reports" / summary["run_id"] / "junit.xml").exists():
            raise SystemExit("wheel check: workerprobe test wrote no junit.xml in its run's folder")
        print(f"verdict: {summary['verdict']} ({summary['reason']})", flush=True)
        # Another project's own test beside the suite, through the plugin's entry point.
        (other / "pyproject.toml").write_text('[project]\nname = "my-worker-tests"\nversion = "0"\n')  # defaults
        (other / "test_mine.py").write_text(
            "from pathlib import Path\n\n\ndef test_mine():\n    Path('mine-ran').write_text('yes')\n"
        )
        verdicts = []
        for mode, extra in (("strict (pytest-asyncio's default)", []), ("auto", ["-o", "asyncio_mode=auto"])):
            (other / "mine-ran").unlink(missing_ok=True)
            name = f"pytest -p workerprobe --workerprobe in another project, asyncio mode {mode}"
            figures[f"plugin_{mode.split()[0]}_s"] = step(
                name,
                [str(python), "-m", "pytest", "-p", "workerprobe", "--workerprobe", "-q", "-x", "-n", "2", *extra,
                 "test_mine.py"],
                other,
            )  # fmt: skip
            mine = json.loads((other / "reports" / "latest" / "summary.json").read_text())
            if not (other / "mine-ran").exists():
                raise SystemExit("wheel check: the other project's own test did not run beside the suite")
            noise = warnings_in(OUTPUT[name])
            if noise:
                raise SystemExit("wheel check: warnings in the other project's output:\n" + "\n".join(noise[:20]))
            print(f"verdict in another project ({mode}): {mine['verdict']} ({mine['reason']})", flush=True)
            verdicts.append(mine["verdict"])
        runs = sorted(p.name for p in (other / "reports").glob("wp-*"))
        if len(runs) != 2:
            raise SystemExit(f"wheel check: two runs should have two report folders, not {runs}")
        print(json.dumps({k: round(v, 1) for k, v in figures.items()}), flush=True)
        return 0 if summary["verdict"] == "PASS" and verdicts == ["PASS", "PASS"] else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
