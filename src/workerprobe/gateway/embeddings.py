"""POST /v1/embeddings: string or array input, float or base64 (little-endian float32)."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from workerprobe import tokens
from workerprobe.cloudflare import WorkersAI
from workerprobe.cloudflare.errors import UpstreamFailure
from workerprobe.gateway.errors import BadRequest, from_upstream
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter
from workerprobe.gateway.protocol import Int, OpenAIModel, parse_body

__all__ = ["EmbeddingRequest", "create_embeddings"]


class EmbeddingRequest(OpenAIModel):
    NOT_NULL = frozenset({"model", "input", "encoding_format", "dimensions", "user"})

    model: str = Field(min_length=1)
    # OpenAI's limit; batches over the upstream's 100 are split.
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Int | None = Field(default=None, ge=1)
    user: str | None = None


async def embed(
    upstream: WorkersAI, router: ModelRouter, metrics: Metrics, request: EmbeddingRequest
) -> tuple[dict[str, Any], dict[str, str]]:
    resolved = router.resolve(request.model, "text-embeddings")
    dims = resolved.model.dimensions
    if request.dimensions is not None and request.dimensions != dims:
        raise BadRequest(
            f"The model `{request.model}` has {dims} dimensions; `dimensions` must be {dims} or omitted",
            param="dimensions",
        )
    texts = [request.input] if isinstance(request.input, str) else request.input
    if any(not t for t in texts):
        raise BadRequest("Input texts must not be empty", param="input")
    # Batches over the upstream's limit (100 texts) are split, sent together, and merged in order.
    size = resolved.model.max_batch or 100
    batches = [texts[i : i + size] for i in range(0, len(texts), size)]
    try:
        results = await asyncio.gather(*(upstream.run(resolved.model.name, {"text": b}) for b in batches))
    except UpstreamFailure as exc:
        raise from_upstream(exc, request.model) from None
    vectors: list[Any] = []
    for batch, result in zip(batches, results, strict=True):
        data = result.get("data") if isinstance(result, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise from_upstream(UpstreamFailure("Workers AI returned no embeddings"), request.model)
        vectors.extend(data)
    data = []
    for i, vector in enumerate(vectors):
        value: Any = vector
        if request.encoding_format == "base64":
            value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    used = sum(tokens.count(t) for t in texts)
    metrics.usage(resolved.model, used, 0)
    body = {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
    return body, resolved.headers()


async def create_embeddings(request: Request) -> Response:
    state = request.app.state
    body = await parse_body(request, EmbeddingRequest, state.settings.max_body_bytes)
    result, headers = await embed(state.upstream, state.models, state.metrics, body)
    return Response(orjson.dumps(result), media_type="application/json", headers=headers)
