"""The end of a load run, in the process that runs it (or Locust's master): the summary JSON,
plots and page, the table a person reads, the thresholds broken, and the exit code."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from workerprobe.loadkit.summary import Collector, accuracy, generator_health

__all__ = ["SCHEMA_VERSION", "conclude"]

SCHEMA_VERSION = 1  # of the load summary.json (loadkit/summary.schema.json)


def _step_summary(table: str, summary: dict[str, Any], breaches: list[str]) -> None:
    """On GitHub Actions, the run's table appended to the job's step summary."""
    import os

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    said = "".join(f"- threshold breached: {b}\n" for b in breaches) or "- no threshold breached\n"
    text = f"## workerprobe load: {summary['profile']} against {summary['target']}\n\n```\n{table}\n```\n\n{said}"
    with open(target, "a", encoding="utf-8") as out:
        out.write(text + "\n")


def conclude(options: Any, collector: Collector, state: dict[str, Any], host: str | None) -> int | None:
    """Write the run's summary, plots and page, print its table and what went wrong; the exit code
    (1 a threshold broken or the run stopped by the daily allocation, 2 nothing measured; None:
    Locust's own)."""
    ended = time.time()
    started = state.get("started") or ended
    duration = max(ended - started, 1e-9)
    collector.cpu_s += time.process_time() - state.get("cpu_reported", state.get("cpu_started", 0.0))
    processes = 1 + (options.expect_workers if getattr(options, "master", False) else 0)
    summary = (
        {"schema_version": SCHEMA_VERSION}
        | collector.summary()
        | {
            "stop_reason": state["stop_reason"],
            "profile": options.load_profile,
            "users": options.load_users,
            "target": options.target_name or host,
            "version": _version(),
            "started_at": _iso(started),
            "ended_at": _iso(ended),
            "duration_s": duration,
            "generator": _generator(collector, options, duration, processes),
            "throughput": {
                "requests_per_s": collector.requests / duration,
                "answered_per_s": (collector.requests - sum(collector.causes.values())) / duration,
                "output_tokens_per_s": collector.output_tokens / duration,
            },
        }
    )
    if options.emulator_trace:
        summary["accuracy"] = _accuracy(collector, options.emulator_trace)
    breaches = _breaches(options, summary)
    summary["thresholds_breached"] = breaches
    out = Path(options.summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    from workerprobe.loadkit.plots import plot_all

    plot_all(collector, out.parent)
    from workerprobe.loadkit.page import write_page

    write_page(summary, out.parent)
    ttft = summary["ttft_s"] or {}
    table = _table(summary)
    print(table, flush=True)
    _step_summary(table, summary, breaches)
    print(
        f"workerprobe load: {summary['requests']} LLM requests, error rate {summary['error_rate']:.3f}, "
        f"p50/p95 TTFT {_ms(ttft)}, truncation rate "
        f"{summary['truncation_rate']:.3f}, neurons ~{summary['neurons']:.2f}; summary in {out}",
        flush=True,
    )
    if state["stop_reason"]:
        print(f"workerprobe load: stopped early: {state['stop_reason']}", flush=True)
    for breach in breaches:
        print(f"workerprobe load: THRESHOLD BREACHED: {breach}", flush=True)
    if summary["generator"]["bottleneck"]:
        allowed = " (allowed by --allow-busy-generator)" if options.allow_busy_generator else ""
        print(
            f"workerprobe load: WARNING: the load generator was the bottleneck: {summary['generator']['bottleneck']}; "
            f"its figures measure itself as much as the target; use fewer users or --workers{allowed}",
            flush=True,
        )
    busy = summary["generator"]["bottleneck"] and not options.allow_busy_generator
    answered = collector.requests - sum(collector.causes.values())
    if state.get("unusable") or answered <= 0:  # nothing could be measured: not a pass, not a finding
        failed = ", ".join(f"{n} {cause}" for cause, n in summary["failures"].items())
        why = (
            f"all {collector.requests} failed ({failed})"
            if collector.requests
            else "none ended within the run (the target never finished an answer in time)"
        )
        print(f"workerprobe load: nothing could be measured: no request completed; {why}", flush=True)
        return 2
    if breaches or busy or state["stop_reason"] == "daily allocation spent":
        return 1
    return None


def _generator(collector: Collector, options: Any, duration: float, processes: int) -> dict[str, Any]:
    paced = options.load_profile == "free-plan"
    return generator_health(
        collector.cpu_s,
        duration,
        processes,
        collector.schedule_delay,
        options.requests_per_minute / 60.0 if paced else None,
        collector.requests,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("workerprobe")
    except PackageNotFoundError:
        return "unknown"


def _iso(when: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def _table(summary: dict[str, Any]) -> str:
    """The run's end, as a person reads it."""
    rate = summary["throughput"]
    lines = [
        f"workerprobe load: {summary['target']}, profile {summary['profile']}, {summary['duration_s']:.0f} s",
        f"  {'throughput':<12} {rate['requests_per_s']:.1f} req/s, {rate['output_tokens_per_s']:.0f} output tokens/s",
    ]
    for name, key in (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("ITL", "itl_s"), ("end to end", "e2e_s")):
        figures = summary[key]
        if figures:
            lines.append(
                f"  {name:<12} p50 {1000 * figures['p50']:8.1f} ms   p95 {1000 * figures['p95']:8.1f} ms   "
                f"p99 {1000 * figures['p99']:8.1f} ms   (n={figures['n']})"
            )
        else:
            lines.append(f"  {name:<12} n/a (nothing measured)")
    own = summary.get("gateway_overhead_s")
    if own:
        lines.append(
            f"  {'gateway own':<12} p50 {1000 * own['p50']:8.3f} ms   p95 {1000 * own['p95']:8.3f} ms   "
            f"(x-workerprobe-overhead-ms, n={own['n']})"
        )
    lines.append(f"  {'truncation':<12} {summary['truncation_rate']:.3f} of answers cut at max_tokens")
    failed = ", ".join(f"{c} {n}" for c, n in summary["failures"].items()) or "none"
    lines.append(f"  {'errors':<12} {summary['error_rate']:.3f} of {summary['requests']} requests; {failed}")
    lines.append(f"  {'neurons':<12} ~{summary['neurons']:.2f}")
    gen = summary["generator"]
    paced = ""
    if gen["requested_rps"] is not None:
        delay = gen["schedule_delay_s"]
        late = f", schedule delay p50 {1000 * delay['p50']:.1f} ms p95 {1000 * delay['p95']:.1f} ms" if delay else ""
        paced = f"; {gen['achieved_rps']:.2f} of {gen['requested_rps']:.2f} req/s asked{late}"
    lines.append(f"  {'generator':<12} CPU {gen['cpu_s']:.1f} s ({gen['cpu_share']:.0%} of {gen['processes']}){paced}")
    return "\n".join(lines)


def _ms(figures: dict[str, Any]) -> str:
    """p50/p95 in milliseconds, or n/a when nothing was measured."""
    if not figures:
        return "n/a"
    return f"{1000 * figures['p50']:.1f}/{1000 * figures['p95']:.1f} ms"


def _accuracy(collector: Collector, emulator: str) -> dict[str, Any]:
    """The measured timings against the emulator's trace of the same requests (its clock)."""
    ids = [request_id for request_id, _, _ in collector.timelines]
    traces: dict[str, Any] = {}
    for start in range(0, len(ids), 100):
        batch = ",".join(ids[start : start + 100])
        traces |= requests.get(f"{emulator}/__emulator/trace", params={"ids": batch}, timeout=30).json()
    return accuracy(collector.timelines, traces)


def _breaches(options: Any, summary: dict[str, Any]) -> list[str]:
    out = []
    ttft = summary["ttft_s"]
    if options.p95_ttft_ms > 0 and ttft and ttft["p95"] * 1000 > options.p95_ttft_ms:
        out.append(f"p95 TTFT {ttft['p95'] * 1000:.1f} ms > {options.p95_ttft_ms:g} ms")
    if options.max_error_rate >= 0 and summary["error_rate"] > options.max_error_rate:
        out.append(f"error rate {summary['error_rate']:.3f} > {options.max_error_rate:g} ({summary['failures']})")
    if options.max_truncation_rate >= 0 and summary["truncation_rate"] > options.max_truncation_rate:
        out.append(f"truncation rate {summary['truncation_rate']:.3f} > {options.max_truncation_rate:g}")
    if summary["neurons"] > options.max_neurons:
        out.append(f"neurons {summary['neurons']:.2f} > {options.max_neurons:g}")
    return out
