"""What a chat request becomes before it goes upstream, and what comes back: the plan
(`Prepared`: model, limits, parts, cache key; made once by the service, then frozen), the `Outcome` of an
answer, and the two shapes a completion is handed out in (`Answer`, `Streamed`)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from workerprobe.catalogue import Model
from workerprobe.gateway.freeplan.cache import CacheDecision
from workerprobe.gateway.models import Resolved
from workerprobe.ids import unique_hex

__all__ = ["Answer", "Outcome", "Prepared", "Served", "Streamed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a completion ended: its text, OpenAI-form tool calls, usage and finish reason.
    `usage` is what the client is told (with a stop sequence, the tokens returned); `spent`, when
    it differs, is what the upstream generated (what budgets are charged)."""

    text: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any]
    finish: str
    spent: dict[str, Any] | None = None


@dataclass(slots=True)
class Served:
    """What serving a planned request decided on the way, one per request: the model that
    answers (the planned one, or its fallback) and the headers of the answer."""

    model: Model
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Prepared:
    """The request planned once (by `ChatService`): never changed afterwards; what serving it
    decides (a fallback model, headers) goes to `served`."""

    resolved: Resolved
    body: dict[str, Any]
    limit: int  # the max_tokens in force: in total when answers are continued
    stops: list[str]
    include_usage: bool
    served: Served
    key: str = ""  # the client key's identity (budgets)
    explicit: int | None = None  # the client's max_tokens (or the configured default)
    continuing: bool = False  # cut answers are continued, up to `limit` tokens
    segments: tuple[list[dict[str, Any]], ...] = ()  # messages of each part
    cache_key: str | None = None
    cache: CacheDecision | None = None
    request_id: str = ""  # the client's request id, sent upstream (x-request-id)
    id: str = field(default_factory=lambda: f"chatcmpl-{unique_hex()}")
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def called(self) -> Model:
        """The model called: the resolved one, or its fallback."""
        return self.served.model

    @property
    def headers(self) -> dict[str, str]:
        return self.served.headers


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole completion: what the route renders as JSON, and what a run stores."""

    outcome: Outcome
    prepared: Prepared

    @property
    def headers(self) -> dict[str, str]:
        return self.prepared.headers


@dataclass(frozen=True, slots=True)
class Streamed:
    """A completion as it is produced: text pieces, None for a keep-alive, the `Outcome` last."""

    items: AsyncGenerator[str | None | Outcome]
    prepared: Prepared

    @property
    def headers(self) -> dict[str, str]:
        return self.prepared.headers
