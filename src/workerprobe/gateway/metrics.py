"""Prometheus metrics of the gateway, served at /metrics.

Per registry (one per app, so tests and several apps in a process never share counters):
requests and latency by endpoint and status, upstream latency by model, tokens and neurons spent
by model, and errors by cause.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workerprobe.catalogue import Model

__all__ = ["Metrics", "MetricsMiddleware", "metrics_endpoint"]

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

    def usage(self, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens.labels(model.name, "prompt").inc(prompt_tokens)
        self.tokens.labels(model.name, "completion").inc(completion_tokens)
        self.neurons.labels(model.name).inc(model.neurons(prompt_tokens, completion_tokens))


class MetricsMiddleware:
    """Counts every HTTP response by endpoint (the route's function name) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                endpoint = getattr(scope.get("endpoint"), "__name__", "unmatched")
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
                self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            await send(message)

        await self.app(scope, receive, observe)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
