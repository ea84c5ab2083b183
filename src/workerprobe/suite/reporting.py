"""Allure material: the exchanges of a failing test (request, response, a curl command to replay
it, with `Authorization` redacted), and the run's environment and categories."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from workerprobe.suite import bounds
from workerprobe.suite.findings import curl

__all__ = ["CATEGORIES", "Exchanges", "write_allure_metadata"]

REDACTED = "[redacted]"
_SECRET_HEADERS = {"authorization", "cookie", "x-api-key"}

# Allure groups failures by these (matched against the failure message).
CATEGORIES = [
    {"name": "MUST: an official client breaks", "matchedStatuses": ["failed"], "messageRegex": r"(?s)(.*\n)?MUST .*"},
    {"name": "SHOULD: differs from OpenAI", "matchedStatuses": ["failed"], "messageRegex": r"(?s)(.*\n)?SHOULD .*"},
    {
        "name": "auth",
        "matchedStatuses": ["failed"],
        "messageRegex": r"(?s).*(AuthenticationError|401|ignored_auth|Authorization|API key).*",
    },
    {
        "name": "streaming",
        "matchedStatuses": ["failed"],
        "messageRegex": r"(?s).*(stream|\[DONE\]|chunk|event-stream).*",
    },
    {
        "name": "truncation",
        "matchedStatuses": ["failed"],
        "messageRegex": r"(?s).*(finish_reason|max_tokens|length|truncat).*",
    },
    {
        "name": "schema conformance",
        "matchedStatuses": ["failed"],
        "messageRegex": r"(?s).*(schema|Schema|status code|Content-Type).*",
    },
    {"name": "broken tests", "matchedStatuses": ["broken"]},
]


def _headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


class Exchanges:
    """httpx event hooks that keep the last few request/response pairs of a client."""

    def __init__(self, keep: int = 5, on_response: Callable[[httpx.Response], None] | None = None) -> None:
        self.keep = keep
        self.items: list[httpx.Response] = []
        self.on_response = on_response

    def hook(self, response: httpx.Response) -> None:
        self.items = [*self.items[-(self.keep - 1) :], response]
        if self.on_response is not None:
            self.on_response(response)

    def client(self, **kwargs: object) -> httpx.Client:
        bounded = bounds.transport()  # every answer bounded in size and time
        return httpx.Client(event_hooks={"response": [self.hook]}, transport=bounded, **kwargs)  # type: ignore[arg-type]

    def async_client(self, **kwargs: object) -> httpx.AsyncClient:
        async def hook(response: httpx.Response) -> None:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                await response.aread()  # the sync hook reads JSON bodies; an async body must be read here
            self.hook(response)

        bounded = bounds.async_transport()
        return httpx.AsyncClient(event_hooks={"response": [hook]}, transport=bounded, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def curl(request: httpx.Request) -> str:
        return curl(request.method, str(request.url), dict(request.headers), request.content)

    def attach(self) -> None:
        import allure

        for i, response in enumerate(self.items, 1):
            request = response.request
            allure.attach(self.curl(request), f"{i}. curl", allure.attachment_type.TEXT)
            try:
                body = response.read().decode(errors="replace")
            except httpx.StreamConsumed:
                body = "(stream, consumed by the client)"
            text = (
                f"HTTP {response.status_code}\n"
                + "\n".join(f"{k}: {v}" for k, v in _headers(response.headers).items())
                + f"\n\n{body[:20000]}"
            )
            allure.attach(text, f"{i}. response {response.status_code}", allure.attachment_type.TEXT)


def write_allure_metadata(results_dir: Path, environment: dict[str, str]) -> None:
    """`environment.properties` and `categories.json`, which allure-pytest does not write."""
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in environment.items()]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))
