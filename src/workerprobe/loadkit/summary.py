"""Aggregating samples into the LLM metrics, exactly (no Locust buckets), mergeable across
distributed workers (a part is plain JSON)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workerprobe.loadkit.causes import CAUSES, Cause
from workerprobe.loadkit.timing import Sample

__all__ = ["Collector", "accuracy", "generator_health", "percentiles"]

# The load generator is the bottleneck past these (inference-perf holds its median schedule delay
# under 10 ms): its figures then measure the generator as much as the target.
GENERATOR_CPU_LIMIT = 0.9
SCHEDULE_DELAY_LIMIT_S = 0.010

QUANTILES = (50, 90, 95, 99)
_TIMELINES = 20_000  # streamed requests kept per process for the comparison with the server's clock


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values, dtype=float)
    out = {f"p{q}": float(np.percentile(array, q)) for q in QUANTILES}
    out |= {"mean": float(array.mean()), "min": float(array.min()), "max": float(array.max()), "n": len(values)}
    return out


@dataclass
class Collector:
    """What one process measured; `part()` / `merge()` carry it to the master."""

    ttfb: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)  # the gateway's own time, where it says it
    schedule_delay: list[float] = field(default_factory=list)  # paced requests: started - due
    # seconds the run spent at each number of running users (sampled once a second by the master)
    level_seconds: dict[int, float] = field(default_factory=dict)
    cpu_s: float = 0.0  # the load generator's CPU time
    requests: int = 0
    output_tokens: int = 0
    estimated_tokens: int = 0
    causes: Counter[str] = field(default_factory=Counter)
    # per "model|max_tokens": [answers, finish "length", silent truncations]
    truncation: dict[str, list[int]] = field(default_factory=dict)
    neurons: float = 0.0
    # (concurrency, e2e) pairs, for latency against concurrency
    by_users: list[tuple[int, float]] = field(default_factory=list)
    # (request id, sent, content chunk arrivals) of streamed requests
    timelines: list[tuple[str, float, list[float]]] = field(default_factory=list)

    def add(self, sample: Sample, model: str, limit: int | None, users: int, neurons: float) -> None:
        self.requests += 1
        self.e2e.append(sample.e2e)
        self.by_users.append((users, sample.e2e))
        if sample.ttfb is not None:
            self.ttfb.append(sample.ttfb)
        if sample.ttft is not None:
            self.ttft.append(sample.ttft)
        if sample.tpot is not None:
            self.tpot.append(sample.tpot)
        self.itl.extend(sample.gaps)
        if sample.request_id and sample.sent is not None and sample.content_times and len(self.timelines) < _TIMELINES:
            self.timelines.append((sample.request_id, sample.sent, sample.content_times))
        if sample.overhead is not None:
            self.overhead.append(sample.overhead)
        if sample.e2e > 0 and sample.output_tokens:
            self.tokens_per_s.append(sample.output_tokens / sample.e2e)
        self.estimated_tokens += sample.estimated
        self.output_tokens += sample.output_tokens
        self.neurons += neurons
        key = f"{model}|{limit if limit is not None else 'default'}"
        counts = self.truncation.setdefault(key, [0, 0, 0])
        counts[0] += 1
        if sample.finish_reason == "length":
            counts[1] += 1
        elif limit is not None and sample.output_tokens >= limit:
            counts[2] += 1  # reached the limit but did not say so: silent truncation

    def fail(self, cause: Cause) -> None:
        self.requests += 1
        self.causes[cause] += 1

    def part(self) -> dict[str, Any]:
        return {
            "ttfb": self.ttfb,
            "ttft": self.ttft,
            "tpot": self.tpot,
            "itl": self.itl,
            "e2e": self.e2e,
            "tokens_per_s": self.tokens_per_s,
            "overhead": self.overhead,
            "schedule_delay": self.schedule_delay,
            "cpu_s": self.cpu_s,
            "level_seconds": self.level_seconds,
            "requests": self.requests,
            "output_tokens": self.output_tokens,
            "estimated_tokens": self.estimated_tokens,
            "causes": dict(self.causes),
            "truncation": self.truncation,
            "neurons": self.neurons,
            "by_users": self.by_users,
            "timelines": self.timelines,
        }

    def merge(self, part: dict[str, Any]) -> None:
        for name in ("ttfb", "ttft", "tpot", "itl", "e2e", "tokens_per_s"):
            getattr(self, name).extend(part[name])
        self.overhead.extend(part.get("overhead", []))
        self.schedule_delay.extend(part.get("schedule_delay", []))
        self.cpu_s += part.get("cpu_s", 0.0)
        for level, seconds in part.get("level_seconds", {}).items():
            self.level_seconds[int(level)] = self.level_seconds.get(int(level), 0.0) + float(seconds)
        self.by_users.extend((int(u), float(t)) for u, t in part["by_users"])
        self.timelines.extend((str(i), float(t), [float(x) for x in xs]) for i, t, xs in part.get("timelines", []))
        self.requests += part["requests"]
        self.output_tokens += part.get("output_tokens", 0)
        self.estimated_tokens += part["estimated_tokens"]
        self.causes.update(part["causes"])
        self.neurons += part["neurons"]
        for key, counts in part["truncation"].items():
            mine = self.truncation.setdefault(key, [0, 0, 0])
            for i, n in enumerate(counts):
                mine[i] += n

    def clear(self) -> None:
        fresh = Collector()
        self.__dict__.update(fresh.__dict__)

    def by_concurrency(self, min_share: float = 0.02) -> list[dict[str, Any]]:
        """Latency and throughput at each number of running users the run held (levels with at
        least `min_share` of the answers, and 3: a ramp's passing counts are left out), with the
        samples each figure rests on."""
        answers: dict[int, list[float]] = {}
        for users, e2e in self.by_users:
            answers.setdefault(users, []).append(e2e)
        floor = max(3, int(min_share * len(self.by_users)))
        out = []
        for users in sorted(answers):
            values = answers[users]
            if len(values) < floor:
                continue
            seconds = self.level_seconds.get(users)
            out.append(
                {
                    "users": users,
                    "n": len(values),
                    "e2e_p50_s": float(np.percentile(values, 50)),
                    "e2e_p95_s": float(np.percentile(values, 95)),
                    "seconds": seconds,
                    "answers_per_s": len(values) / seconds if seconds else None,
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        answered = sum(c[0] for c in self.truncation.values())
        return {
            "requests": self.requests,
            "failures": {cause: n for cause, n in self.causes.items() if n},
            # every cause, zeros too: a shape CI can read without knowing which occurred
            "causes": {cause: self.causes.get(cause, 0) for cause in CAUSES},
            "output_tokens": self.output_tokens,
            "error_rate": (sum(self.causes.values()) / self.requests) if self.requests else 0.0,
            "ttfb_s": percentiles(self.ttfb),
            "ttft_s": percentiles(self.ttft),
            "tpot_s": percentiles(self.tpot),
            "itl_s": percentiles(self.itl),
            "e2e_s": percentiles(self.e2e),
            "output_tokens_per_s": percentiles(self.tokens_per_s),
            # x-workerprobe-overhead-ms of the answers that carried it (null: the target sends none)
            "gateway_overhead_s": percentiles(self.overhead),
            "estimated_token_counts": self.estimated_tokens,
            "truncation": {
                key: {
                    "answers": c[0],
                    "length": c[1],
                    "silent": c[2],
                    "length_rate": c[1] / c[0] if c[0] else 0.0,
                    "silent_rate": c[2] / c[0] if c[0] else 0.0,
                }
                for key, c in sorted(self.truncation.items())
            },
            "truncation_rate": (sum(c[1] + c[2] for c in self.truncation.values()) / answered) if answered else 0.0,
            "by_concurrency": self.by_concurrency(),
            "neurons": self.neurons,
        }


def accuracy(timelines: list[tuple[str, float, list[float]]], traces: dict[str, Any]) -> dict[str, Any]:
    """What the load generator measured against the server's own clock (the emulator's trace of
    each streamed request, by request id), in seconds: for TTFT, client (first chunk - sent) minus
    server (first token sent - request arrived); for ITL, each gap between chunks minus the server's
    gap between the same tokens; for TPOT, the per-request mean gap likewise. Errors are absolute;
    requests whose chunks do not pair one to one with the server's tokens count as unmatched."""
    ttft: list[float] = []
    itl: list[float] = []
    tpot: list[float] = []
    unmatched = 0
    for request_id, sent, times in timelines:
        trace = traces.get(request_id)
        if not trace or not trace.get("tokens"):
            unmatched += 1
            continue
        tokens = [float(t) for t in trace["tokens"]]
        ttft.append(abs((times[0] - sent) - (tokens[0] - float(trace["arrived"]))))
        if len(tokens) != len(times):
            unmatched += 1
            continue
        itl.extend(abs((b - a) - (d - c)) for a, b, c, d in zip(times, times[1:], tokens, tokens[1:], strict=False))
        if len(times) > 1:
            measured = (times[-1] - times[0]) / (len(times) - 1)
            served = (tokens[-1] - tokens[0]) / (len(tokens) - 1)
            tpot.append(abs(measured - served))

    def errors(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        array = np.asarray(values, dtype=float)
        return {
            "error_p50": float(np.percentile(array, 50)),
            "error_p95": float(np.percentile(array, 95)),
            "n": len(values),
        }

    return {
        "ttft": errors(ttft),
        "tpot": errors(tpot),
        "itl": errors(itl),
        "requests": len(timelines),
        "unmatched": unmatched,
    }


def generator_health(
    cpu_s: float,
    duration_s: float,
    processes: int,
    schedule_delay: list[float],
    requested_rps: float | None,
    requests: int,
) -> dict[str, Any]:
    """Whether the load generator kept up: its CPU (seconds, and the share of its processes'
    time), and for a paced profile (`requested_rps`) the achieved rate and how late requests
    started against when they were due (inference-perf's schedule delay). `bottleneck` says
    why it did not keep up, or is None."""
    share = cpu_s / (max(duration_s, 1e-9) * max(processes, 1))
    delay = percentiles(schedule_delay)
    problems = []
    if share > GENERATOR_CPU_LIMIT:
        problems.append(f"its CPU was {share:.0%} of its {processes} process(es)")
    if delay and delay["p50"] > SCHEDULE_DELAY_LIMIT_S:
        problems.append(f"requests started {1000 * delay['p50']:.1f} ms late (median) against their schedule")
    return {
        "processes": processes,
        "cpu_s": cpu_s,
        "cpu_share": share,
        "schedule_delay_s": delay,
        "requested_rps": requested_rps,
        "achieved_rps": requests / duration_s if requested_rps is not None and duration_s > 0 else None,
        "bottleneck": "; ".join(problems) or None,
    }
