"""Prometheus metrics of the gateway, served at /metrics.

Per registry (one per app, so tests and several apps in a process never share counters):
requests and latency by endpoint and status, upstream latency by model, tokens and neurons spent
by model, and errors by cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from workerprobe.catalogue import Model

__all__ = ["Metrics", "metrics_endpoint"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "workerprobe_requests_total",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "workerprobe_request_seconds",
            "Time to the response headers, by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "workerprobe_upstream_seconds",
            "Workers AI call time (to the first event when streamed)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "workerprobe_tokens_total",
            "Tokens by model and kind (prompt, completion)",
            ["model", "kind"],
            registry=self.registry,
        )
        self.neurons = Counter(
            "workerprobe_neurons_total",
            "Neurons spent, from usage and the catalogue's prices",
            ["model"],
            registry=self.registry,
        )
        self.errors = Counter(
            "workerprobe_errors_total", "Error responses by cause (the error code)", ["cause"], registry=self.registry
        )

        # Labelled children, looked up once: `labels()` takes a lock and builds a key every call.
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}

    def _child(self, key: tuple[str, ...], make: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = make()
        return child

    def response(self, endpoint: str, status: str, seconds: float) -> None:
        count, latency = self._child(
            ("response", endpoint, status),
            lambda: (self.requests.labels(endpoint, status), self.latency.labels(endpoint)),
        )
        count.inc()
        latency.observe(seconds)

    def upstream(self, model: str, seconds: float) -> None:
        (latency,) = self._child(("upstream", model), lambda: (self.upstream_latency.labels(model),))
        latency.observe(seconds)

    def usage(self, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        prompt, completion, neurons = self._child(
            ("usage", model.name),
            lambda: (
                self.tokens.labels(model.name, "prompt"),
                self.tokens.labels(model.name, "completion"),
                self.neurons.labels(model.name),
            ),
        )
        prompt.inc(prompt_tokens)
        completion.inc(completion_tokens)
        neurons.inc(model.neurons(prompt_tokens, completion_tokens))


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
