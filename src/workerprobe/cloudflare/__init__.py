"""Client of the Workers AI REST API: envelopes, errors by code, streaming."""

from workerprobe.cloudflare.client import WorkersAI
from workerprobe.cloudflare.errors import CloudflareError, StreamBroken, UpstreamUnavailable

__all__ = ["CloudflareError", "StreamBroken", "UpstreamUnavailable", "WorkersAI"]
