"""What each free-plan method of the reference gateway buys, measured side by side in one run.

Every run loads the embedded gateway in front of the emulator with its free-plan limits on (daily
neuron allocation, 300 text-generation requests a minute) and a 10% capacity-fault rate (3040),
through the Locust profiles (load/run.py), paced under the per-minute limit. Three prompt sets,
each with its method off and on, and with every method on (`free_plan=true`):

    long-answer   answers of 400-900 tokens, no max_tokens      continuation
    mix           short, capped and long answers                 retries
    repeated      four questions asked over and over, greedily  cache

For each run: truncation rate (answers ending in "length"), success rate, neurons per successful
answer (the emulator's own meter: what the upstream charged), the upstream's answers and its
3040 refusals, p95 end to end. Every run draws its faults from the same seed. Written to
reports/free_plan_methods.{json,md}.

    .venv/bin/python bench/free_plan_methods.py [--seconds 30] [--users 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "free_plan_methods"

METHODS: dict[str, list[str]] = {
    "off": [],
    "continuation": ['continuation_models=["*"]'],
    "retries": ["retry_attempts=3"],
    "cache": ["cache_ttl_s=3600"],
    "all (free_plan=true)": ["free_plan=true"],
}
# prompt set -> (the method it shows, client requests per minute, user classes)
PROFILES: dict[str, tuple[str, float, list[str]]] = {
    # Continued answers take 2-4 upstream calls each: paced so the upstream stays under 300/min.
    "long-answer": ("continuation", 60.0, ["ChatUser", "StreamUser"]),
    "mix": ("retries", 240.0, ["ChatUser", "StreamUser"]),
    "repeated": ("cache", 240.0, ["ChatUser", "StreamUser"]),
}
TARGETS = {
    "long-answer": "truncation 0% with continuation",
    "mix": "success >= 99% with retries under 10% capacity faults",
    "repeated": ">= 80% fewer neurons per answer with the cache",
}


def run_one(prompts: str, method: str, args: argparse.Namespace, rpm: float, classes: list[str]) -> dict[str, object]:
    out = OUT / f"{prompts}-{method.split()[0]}"
    command = [
        sys.executable,
        str(ROOT / "load" / "run.py"),
        "--embedded",
        "--profile",
        "free-plan",
        "--users",
        str(args.users),
        "--seconds",
        str(args.seconds),
        "--free-plan",
        "--fault-rates",
        '{"3040": 0.1}',
        "--ttft-ms",
        "40",
        "--tpot-ms",
        "4",
        "--out",
        str(out),
        "--classes",
        *classes,
    ]
    for setting in METHODS[method]:
        command += ["--gateway-env", setting]
    # a measurement, not a gate: failures are counted, not judged
    command += [
        "--prompts",
        prompts,
        "--requests-per-minute",
        str(rpm),
        "--max-neurons",
        "9000",
        "--max-error-rate",
        "-1",
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    summary_path = out / "summary.json"
    if not summary_path.exists():
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        raise RuntimeError(f"no summary from the {prompts}/{method} run")
    summary = json.loads(summary_path.read_text())
    requests = summary["requests"]
    failures = sum(summary["failures"].values())
    answered = requests - failures
    e2e = summary["e2e_s"] or {}
    return {
        "prompts": prompts,
        "method": method,
        "requests": requests,
        "answers": answered,
        "failures": summary["failures"],
        "success_rate": answered / requests if requests else 0.0,
        "truncation_rate": summary["truncation_rate"],
        "upstream_requests": summary.get("upstream_requests_served"),
        "upstream_neurons": summary.get("upstream_neurons"),
        "upstream_errors": summary.get("upstream_errors"),
        "neurons_per_answer": (summary.get("upstream_neurons") or 0.0) / answered if answered else None,
        "p95_e2e_s": e2e.get("p95"),
        "seconds": round(time.monotonic() - started, 1),
    }


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| prompts | methods on | answers | success | truncation | neurons per answer "
        "| upstream answers / 3040s | p95 end to end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        npa = r["neurons_per_answer"]
        p95 = r["p95_e2e_s"]
        lines.append(
            f"| {r['prompts']} | {r['method']} | {r['answers']} of {r['requests']} "
            f"| {100 * float(r['success_rate']):.1f}% "  # type: ignore[arg-type]
            f"| {100 * float(r['truncation_rate']):.1f}% | {'-' if npa is None else f'{npa:.3f}'} "  # type: ignore[arg-type]
            f"| {r['upstream_requests']} / {(r['upstream_errors'] or {}).get('3040', 0)} "  # type: ignore[union-attr]
            f"| {'-' if p95 is None else f'{1000 * float(p95):.0f} ms'} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, object]]) -> list[str]:
    by = {(r["prompts"], r["method"]): r for r in rows}
    out = []
    for prompts, (method, _, _) in PROFILES.items():
        off, on = by[(prompts, "off")], by[(prompts, method)]
        if prompts == "long-answer":
            ok = float(on["truncation_rate"]) == 0.0  # type: ignore[arg-type]
            seen = f"truncation {100 * float(off['truncation_rate']):.1f}% -> {100 * float(on['truncation_rate']):.1f}%"  # type: ignore[arg-type]
        elif prompts == "mix":
            ok = float(on["success_rate"]) >= 0.99  # type: ignore[arg-type]
            seen = f"success {100 * float(off['success_rate']):.1f}% -> {100 * float(on['success_rate']):.1f}%"  # type: ignore[arg-type]
        else:
            before, after = float(off["neurons_per_answer"] or 0), float(on["neurons_per_answer"] or 0)  # type: ignore[arg-type]
            cut = 1 - after / before if before else 0.0
            ok = cut >= 0.80
            seen = f"neurons per answer {before:.3f} -> {after:.3f} ({100 * cut:.1f}% fewer)"
        out.append(f"{'MET' if ok else 'MISSED'}: {TARGETS[prompts]}: {seen}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for prompts, (method, rpm, classes) in PROFILES.items():
        for chosen in ("off", method, "all (free_plan=true)"):
            row = run_one(prompts, chosen, args, rpm, classes)
            print(
                f"{prompts:12} {chosen:22} answers {row['answers']}/{row['requests']}, "
                f"truncation {100 * float(row['truncation_rate']):.1f}%, "  # type: ignore[arg-type]
                f"neurons/answer {row['neurons_per_answer']}, failures {row['failures']}",
                flush=True,
            )
            rows.append(row)
    report = table(rows)
    judged = verdicts(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT.parent / "free_plan_methods.json").write_text(json.dumps(rows, indent=2))
    (OUT.parent / "free_plan_methods.md").write_text(report + "\n\n" + "\n".join(f"- {v}" for v in judged) + "\n")
    print(report)
    for line in judged:
        print(line)
    return 0 if all(v.startswith("MET") for v in judged) else 1


if __name__ == "__main__":
    raise SystemExit(main())
