"""POST /v1/embeddings: string or array input, float or base64 (little-endian float32).

Batches over the upstream's limit (100 texts) are split, sent together and merged in order. An
input over the model's token limit is truncated to it when the client opts in (header
`x-workerprobe-truncate: true`, or `embedding_truncate` in the settings); otherwise it is a 400
with the counts, before any upstream call."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workerprobe import tokens
from workerprobe.gateway.edge import client_key
from workerprobe.gateway.errors import BadGateway, BadRequest
from workerprobe.gateway.freeplan.budget import Budgets
from workerprobe.gateway.metrics import Metrics
from workerprobe.gateway.models import ModelRouter
from workerprobe.gateway.protocol import Int, OpenAIModel, parse_body
from workerprobe.gateway.upstream import Call, Fallback

__all__ = ["EmbeddingRequest", "EmbeddingsService", "create_embeddings", "routes"]

TRUNCATE_HEADER = "x-workerprobe-truncate"


class EmbeddingRequest(OpenAIModel):
    NOT_NULL = frozenset({"model", "input", "encoding_format", "dimensions", "user"})

    model: str = Field(min_length=1)
    # OpenAI's limit; batches over the upstream's 100 are split.
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Int | None = Field(default=None, ge=1)
    user: str | None = None


def _fit(texts: list[str], limit: int | None, truncate: bool, model: str, metrics: Metrics) -> list[str]:
    """Inputs within the model's token limit: truncated when allowed, else a 400 with the counts."""
    if limit is None:
        return texts
    out = []
    for i, text in enumerate(texts):
        pieces = tokens.split(text)
        if len(pieces) <= limit:
            out.append(text)
        elif truncate:
            metrics.method("split", "embedding_truncated")
            out.append("".join(pieces[:limit]))
        else:
            where = "The input" if len(texts) == 1 else f"Input {i}"
            raise BadRequest(
                f"{where} has {len(pieces)} tokens; the model `{model}` takes at most {limit} tokens per input. "
                f"Shorten it, or send `{TRUNCATE_HEADER}: true` to have it truncated to {limit} tokens.",
                param="input",
                code="context_length_exceeded",
            )
    return out


class EmbeddingsService:
    """Embeddings over Workers AI: dimensions checked, inputs fitted to the model (refused or
    truncated), batches over the upstream's 100 split and merged in order, usage settled."""

    def __init__(self, upstream: Fallback, router: ModelRouter, metrics: Metrics, budgets: Budgets) -> None:
        self.upstream = upstream
        self.router = router
        self.metrics = metrics
        self.budgets = budgets

    async def create(
        self, request: EmbeddingRequest, *, key: str = "", truncate: bool = False
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The list object and the answer's headers."""
        resolved = self.router.resolve(request.model, "text-embeddings", "v1/embeddings")
        dims = resolved.model.dimensions
        if request.dimensions is not None and request.dimensions != dims:
            raise BadRequest(
                f"The model `{request.model}` has {dims} dimensions; `dimensions` must be {dims} or omitted",
                param="dimensions",
            )
        texts = [request.input] if isinstance(request.input, str) else request.input
        if any(not t for t in texts):
            raise BadRequest("Input texts must not be empty", param="input")
        texts = _fit(texts, resolved.model.max_input_tokens, truncate, resolved.model.name, self.metrics)
        headers = dict(resolved.headers())
        headers.update((await self.budgets.admit(key, resolved.model.name))[0])
        # Batches over the upstream's limit (100 texts) are split, sent together, and merged in order.
        size = resolved.model.max_batch or 100
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) > 1:
            self.metrics.method("split", "embedding_batches")
        calls = (Call(resolved.model, {"text": batch}, requested=request.model) for batch in batches)
        answers = await asyncio.gather(*(self.upstream.run(call) for call in calls))
        vectors: list[Any] = []
        for batch, answered in zip(batches, answers, strict=True):
            data = answered.result.get("data")
            if not isinstance(data, list) or len(data) != len(batch):
                raise BadGateway("Workers AI answered without the embeddings asked for.")
            vectors.extend(data)
        data = []
        for i, vector in enumerate(vectors):
            value: Any = vector
            if request.encoding_format == "base64":
                value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        used = sum(tokens.count(t) for t in texts)
        await self.budgets.settle(key, resolved.model, used, 0)
        body = {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
        return body, headers


async def create_embeddings(request: Request) -> Response:
    state = request.app.state
    body = await parse_body(request, EmbeddingRequest)
    truncate = state.settings.embedding_truncate or request.headers.get(TRUNCATE_HEADER, "").lower() == "true"
    result, headers = await state.embeddings.create(body, key=client_key(request.scope), truncate=truncate)
    return Response(orjson.dumps(result), media_type="application/json", headers=headers)


routes = [Route("/v1/embeddings", create_embeddings, methods=["POST"])]
