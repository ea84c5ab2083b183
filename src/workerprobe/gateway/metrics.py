"""Prometheus metrics of the gateway, served at /metrics.

Requests and latency by endpoint and status, upstream latency by model, tokens and neurons spent
by model, errors by cause, and what the free-plan methods did: continuations, splits, cache hits
and the neurons they saved, retries by cause, budget remaining. The hot path only adds to plain
dictionaries (the event loop is one thread, so nothing needs a lock); a collector turns them into
metric families when Prometheus scrapes. With prometheus_client's own Counter and Histogram,
their per-call locks and label lookups were a measurable share of the gateway's CPU per request
(bench/gateway_bench.py).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from workerprobe.catalogue import Model

__all__ = ["Metrics", "metrics_endpoint"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The gateway's own time is sub-millisecond when all is well.
OWN_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class Metrics(Collector):
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = defaultdict(_Histogram)
        self.upstream_latency: dict[str, _Histogram] = defaultdict(_Histogram)
        self.own: dict[str, _Histogram] = defaultdict(lambda: _Histogram(OWN_BUCKETS))
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)
        self.neurons: dict[str, float] = defaultdict(float)
        self.errors: dict[str, int] = defaultdict(int)
        self.methods: dict[tuple[str, str], int] = defaultdict(int)
        self.neurons_saved: dict[str, float] = defaultdict(float)
        self.budget_remaining: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.pid = str(os.getpid())

    def response(self, endpoint: str, status: str, seconds: float) -> None:
        self.requests[(endpoint, status)] += 1
        self.latency[endpoint].observe(seconds)

    def own_time(self, endpoint: str, seconds: float) -> None:
        self.own[endpoint].observe(seconds)

    def upstream(self, model: str, seconds: float) -> None:
        self.upstream_latency[model].observe(seconds)

    def usage(self, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens[(model.name, "prompt")] += prompt_tokens
        self.tokens[(model.name, "completion")] += completion_tokens
        self.neurons[model.name] += model.neurons(prompt_tokens, completion_tokens)

    def error(self, cause: str) -> None:
        self.errors[cause] += 1

    def method(self, method: str, event: str) -> None:
        """A free-plan method acted: e.g. ("retry", "capacity"), ("cache", "hit"), ("continuation", "part")."""
        self.methods[(method, event)] += 1

    def saved(self, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        self.neurons_saved[model.name] += model.neurons(prompt_tokens, completion_tokens)

    def collect(self) -> Iterator[Metric]:
        # Which process answered: with `--workers N` each keeps its own figures, and a scrape
        # sees the one that took the connection.
        process = GaugeMetricFamily("workerprobe_gateway_process", "The server process that answered", labels=["pid"])
        process.add_metric([self.pid], 1)
        yield process
        requests = CounterMetricFamily(
            "workerprobe_requests", "Requests by endpoint and status", labels=["endpoint", "status"]
        )
        for (endpoint, status), n in sorted(self.requests.items()):
            requests.add_metric([endpoint, status], n)
        yield requests
        for name, doc, label, series in (
            ("workerprobe_request_seconds", "Time to the response headers, by endpoint", "endpoint", self.latency),
            (
                "workerprobe_upstream_seconds",
                "Workers AI call time (to the first event when streamed)",
                "model",
                self.upstream_latency,
            ),
            (
                "workerprobe_gateway_overhead_seconds",
                "The gateway's own time to the response headers (total less the wait on Workers AI), by endpoint",
                "endpoint",
                self.own,
            ),
        ):
            family = HistogramMetricFamily(name, doc, labels=[label])
            for key, histogram in sorted(series.items()):
                family.add_metric([key], histogram.buckets(), histogram.total)
            yield family
        tokens = CounterMetricFamily("workerprobe_tokens", "Tokens by model and kind", labels=["model", "kind"])
        for (model, kind), n in sorted(self.tokens.items()):
            tokens.add_metric([model, kind], n)
        yield tokens
        neurons = CounterMetricFamily(
            "workerprobe_neurons", "Neurons spent, from usage and the catalogue's prices", labels=["model"]
        )
        for model, value in sorted(self.neurons.items()):
            neurons.add_metric([model], value)
        yield neurons
        errors = CounterMetricFamily(
            "workerprobe_errors", "Error responses by cause (the error code)", labels=["cause"]
        )
        for cause, n in sorted(self.errors.items()):
            errors.add_metric([cause], n)
        yield errors
        methods = CounterMetricFamily(
            "workerprobe_free_plan_events",
            "What the free-plan methods did: retries by cause, cache hits and misses, continuations, splits, "
            "fallbacks, budget and rate-limit refusals",
            labels=["method", "event"],
        )
        for (method, event), n in sorted(self.methods.items()):
            methods.add_metric([method, event], n)
        yield methods
        saved = CounterMetricFamily(
            "workerprobe_cache_neurons_saved", "Neurons the response cache saved, by model", labels=["model"]
        )
        for model, value in sorted(self.neurons_saved.items()):
            saved.add_metric([model], value)
        yield saved
        remaining = GaugeMetricFamily(
            "workerprobe_budget_remaining_neurons",
            "Neurons left in today's budgets (UTC day), as of the last request",
            labels=["budget"],
        )
        for budget, value in sorted(self.budget_remaining.items()):
            remaining.add_metric([budget], value)
        yield remaining


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
