"""Proof that the suite catches what it claims: the contract and scenario tests run against the
embedded gateway once with no defect (there must be no failure) and once per seeded defect
(workerprobe.suite.defects; each must make at least one test fail, of those of the families it
breaks: `SCOPES`), and once per behaviour that is not a defect but was once reported as one
(NOT_DEFECTS, the whole suite: no test may fail that fails without it).
Writes reports/selftest.{md,json}.

    .venv/bin/python -m workerprobe.suite.selftest [--examples 6] [--defects a b ...] [--not-defects ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from workerprobe.suite.cases import SUITE
from workerprobe.suite.defects import DEFECTS, NOT_DEFECTS, REPORTED, SCOPES

__all__ = ["main"]


def _failures(junit: Path) -> tuple[int, list[str]]:
    root = ET.parse(junit).getroot()
    cases = root.iter("testcase")
    total, failed = 0, []
    for case in cases:
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            failed.append(name)
    return total, sorted(set(failed))


def run_suite(defect: str | None, out: Path, examples: int, scope: str | None = None) -> tuple[int, list[str]]:
    """The suite against the embedded gateway with `defect` switched on (`scope`: only the tests
    that `-k` selects; None: all of them)."""
    env = {
        **os.environ,
        "WORKERPROBE_TARGET": "embedded",
        "WORKERPROBE_CONTRACT_EXAMPLES": str(examples),
        "WORKERPROBE_SELFTEST_DEFECTS": json.dumps([defect] if defect else []),
    }
    junit = out / f"{defect or 'none'}.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *SUITE,
            "--workerprobe",
            "-n",
            "2",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            f"--workerprobe-reports={out / 'runs'}",
            *(["-k", scope] if scope else []),
        ],
        env=env,
        capture_output=True,
        timeout=900,
        check=False,
    )
    return _failures(junit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=6, help="generated cases per operation and phase")
    parser.add_argument("--defects", nargs="*", default=sorted(DEFECTS))
    parser.add_argument("--not-defects", nargs="*", default=sorted(NOT_DEFECTS), help="must not be caught")
    parser.add_argument("--out", default="reports/selftest")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    total, baseline = run_suite(None, out, args.examples)
    print(f"no defect: {total} tests, {len(baseline)} failed {baseline if baseline else ''}", flush=True)
    rows = []
    for defect in args.defects:
        _, failed = run_suite(defect, out, args.examples, SCOPES.get(defect))
        caught = [f for f in failed if f not in baseline]
        rows.append(
            {"defect": defect, "description": DEFECTS[defect], "reported": REPORTED.get(defect), "caught_by": caught}
        )
        print(
            f"{defect:28s} {'caught' if caught else 'MISSED':7s} by {len(caught)}: {', '.join(caught[:4])}", flush=True
        )
    alarms = []
    for behaviour in args.not_defects:
        _, failed = run_suite(behaviour, out, args.examples)
        wrong = [f for f in failed if f not in baseline]
        alarms.append({"behaviour": behaviour, "description": NOT_DEFECTS[behaviour], "failed": wrong})
        print(f"{behaviour:28s} {'FALSE ALARM' if wrong else 'not caught (right)'}: {', '.join(wrong[:4])}", flush=True)
    detected = sum(1 for r in rows if r["caught_by"])
    rate = detected / len(rows) if rows else 1.0
    false = sum(1 for a in alarms if a["failed"])
    report = {
        "tests": total, "baseline_failures": baseline, "detection_rate": rate, "defects": rows, "not_defects": alarms
    }  # fmt: skip
    (out.parent / "selftest.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Seeded defects and what caught them",
        "",
        f"{total} tests; with no defect, {len(baseline)} failed. Detection rate: {detected}/{len(rows)} ({rate:.0%}).",
        "",
        "| defect | what it breaks | reported in | caught by |",
        "|---|---|---|---|",
    ]
    for r in rows:
        shown = ", ".join(f"`{c}`" for c in r["caught_by"][:6]) + (" ..." if len(r["caught_by"]) > 6 else "")
        where = r["reported"] or "(designed here)"
        lines.append(f"| `{r['defect']}` | {r['description']} | {where} | {shown or '**not caught**'} |")
    lines += ["", "| not a defect | what it is | tests it made fail (must be none) |", "|---|---|---|"]
    lines += [f"| `{a['behaviour']}` | {a['description']} | {', '.join(a['failed']) or 'none'} |" for a in alarms]
    (out.parent / "selftest.md").write_text("\n".join(lines) + "\n")
    print(
        f"detection rate {detected}/{len(rows)} ({rate:.0%}); false alarms with no defect: {len(baseline)}, "
        f"on behaviours that are not defects: {false} of {len(alarms)}"
    )
    # Each defect caught counts as passed, each missed one (and a false alarm) as failed.
    passed = detected + len(alarms) - false
    print(f"selftest: {passed} passed, {len(rows) - detected + false + (1 if baseline else 0)} failed")
    return 0 if rate == 1.0 and not baseline and not false else 1


if __name__ == "__main__":
    raise SystemExit(main())
