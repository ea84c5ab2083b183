"""The spec itself: valid OpenAPI 3.1, and complete for the upstream Worker's endpoints."""

from __future__ import annotations

import yaml
from openapi_spec_validator import validate

from workerprobe.suite.contract import SPEC

UPSTREAM_WORKER = {
    ("get", "/models/search"),
    ("get", "/v1/models"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/embeddings"),
    ("post", "/v1/assistants"),
    ("get", "/v1/assistants"),
    ("get", "/v1/assistants/{assistant_id}"),
    ("post", "/v1/assistants/{assistant_id}"),
    ("delete", "/v1/assistants/{assistant_id}"),
    ("post", "/v1/threads"),
    ("get", "/v1/threads/{thread_id}"),
    ("post", "/v1/threads/{thread_id}"),
    ("delete", "/v1/threads/{thread_id}"),
    ("post", "/v1/threads/{thread_id}/runs"),
}
LIFECYCLES = {
    ("post", "/v1/threads/{thread_id}/messages"),
    ("get", "/v1/threads/{thread_id}/messages"),
    ("get", "/v1/threads/{thread_id}/messages/{message_id}"),
    ("get", "/v1/threads/{thread_id}/runs"),
    ("get", "/v1/threads/{thread_id}/runs/{run_id}"),
    ("post", "/v1/threads/{thread_id}/runs/{run_id}/cancel"),
    ("post", "/v1/threads/runs"),
}


def _spec() -> dict:
    return yaml.safe_load(SPEC.read_text())


def _operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (method, path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "delete", "put", "patch")
    }


def test_spec_is_valid_openapi_31() -> None:
    spec = _spec()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_upstream_and_lifecycle_endpoint_is_specified() -> None:
    assert UPSTREAM_WORKER | LIFECYCLES <= set(_operations(_spec()))


def test_every_operation_declares_errors_and_auth() -> None:
    spec = _spec()
    for (method, path), op in _operations(spec).items():
        assert {"4XX", "5XX"} <= set(op["responses"]), f"{method} {path} lacks 4XX/5XX"
        assert op.get("operationId"), f"{method} {path} lacks an operationId"
        if path != "/models/search":
            assert op.get("security", spec["security"]) == [{"bearerAuth": []}], f"{method} {path}"
    assert _operations(spec)[("get", "/models/search")]["security"] == []


def test_streams_declare_a_schema_per_event_with_done() -> None:
    ops = _operations(_spec())
    chat = ops[("post", "/v1/chat/completions")]["responses"]["200"]["content"]
    assert "text/event-stream" in chat and "application/json" in chat
    spec_text = SPEC.read_text()
    assert 'data: {const: "[DONE]"}' in spec_text
    for key in (("post", "/v1/threads/{thread_id}/runs"), ("post", "/v1/threads/runs")):
        assert "text/event-stream" in ops[key]["responses"]["200"]["content"]


def test_links_chain_create_retrieve_modify_delete() -> None:
    ops = _operations(_spec())
    for create, targets in {
        ("post", "/v1/assistants"): {"getAssistant", "modifyAssistant", "deleteAssistant"},
        ("post", "/v1/threads"): {"getThread", "modifyThread", "deleteThread", "createMessage"},
        ("post", "/v1/threads/{thread_id}/messages"): {"getMessage", "modifyMessage", "deleteMessage"},
        ("post", "/v1/threads/{thread_id}/runs"): {"getRun", "modifyRun", "cancelRun"},
    }.items():
        links = ops[create]["responses"]["200"]["links"]
        assert targets <= {link["operationId"] for link in links.values()}
