"""What a chat request becomes before it goes upstream, and what comes back: the plan
(`Prepared`: model, limits, parts, cache key; made once by the service, then frozen), the `Outcome` of an
answer, what serving it decided (`Served`: the model that answered, the answer's headers), and the
two shapes a completion is handed out in (`Answer`, `Streamed`)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from workerprobe.catalogue import Model
from workerprobe.gateway.freeplan.cache import CacheDecision
from workerprobe.gateway.models import Resolved
from workerprobe.gateway.upstream import Call
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
    model: Model | None = None  # the model that answered (None: the planned one)


@dataclass(frozen=True, slots=True)
class Served:
    """What serving a planned request decided, returned with its answer: the model that answered
    (the planned one, or its fallback) and the answer's headers."""

    model: Model
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Prepared:
    """The request planned once (by `ChatService`), never changed afterwards: the model to ask
    (the resolved one, or the fallback its spent budget chose), the body, limits and parts."""

    resolved: Resolved
    model: Model
    body: dict[str, Any]
    limit: int  # the max_tokens in force: in total when answers are continued
    stops: list[str]
    include_usage: bool
    key: str = ""  # the client key's identity (budgets)
    explicit: int | None = None  # the client's max_tokens (or the configured default)
    continuing: bool = False  # cut answers are continued, up to `limit` tokens
    segments: tuple[list[dict[str, Any]], ...] = ()  # messages of each part
    cache_key: str | None = None
    cache: CacheDecision | None = None
    request_id: str = ""  # the client's request id, sent upstream (x-request-id)
    id: str = field(default_factory=lambda: f"chatcmpl-{unique_hex()}")
    created: int = field(default_factory=lambda: int(time.time()))

    def call(self, model: Model, body: dict[str, Any]) -> Call:
        """One upstream call of this request's answer."""
        headers = {"x-request-id": self.request_id} if self.request_id else None
        return Call(model, body, headers, self.resolved.requested)


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole completion: what the route renders as JSON, and what a run stores."""

    outcome: Outcome
    prepared: Prepared
    served: Served

    @property
    def headers(self) -> dict[str, str]:
        return self.served.headers


@dataclass(frozen=True, slots=True)
class Streamed:
    """A completion as it is produced: text pieces, None for a keep-alive, the `Outcome` last."""

    items: AsyncGenerator[str | None | Outcome]
    prepared: Prepared
    served: Served

    @property
    def headers(self) -> dict[str, str]:
        return self.served.headers
