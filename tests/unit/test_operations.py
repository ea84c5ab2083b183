"""The operation facts of the spec (suite/operations.py): complete, read once, fail-closed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from workerprobe.suite import contract, operations
from workerprobe.suite.operations import PREFIX, SPEC, WORST, Operations

_RAW = yaml.safe_load(SPEC.read_text())
_OPS = [
    (method.upper(), path, raw)
    for path, item in _RAW["paths"].items()
    for method, raw in item.items()
    if method in ("get", "post", "put", "patch", "delete")
]
_KNOWN = {"family", "core", "generates", "usage", "creates", "lists", "stream", "sdk", "retired"}


@pytest.mark.parametrize(("method", "path", "raw"), _OPS, ids=[f"{m} {p}" for m, p, _ in _OPS])
def test_every_operation_states_its_facts(method: str, path: str, raw: dict[str, Any]) -> None:
    facts = {key.removeprefix(PREFIX) for key in raw if key.startswith(PREFIX)}
    assert facts <= _KNOWN, f"unknown facts {facts - _KNOWN}: a typo is read as nothing"
    assert "family" in facts, "every operation names its family (a row of the readiness table)"
    if method == "POST":
        # Left out, the suite would take it to generate at the worst case: say what it does.
        assert {"generates", "creates"} <= facts, "a POST says whether it generates and what it creates"
    if isinstance(raw.get(f"{PREFIX}generates"), dict):
        assert "usage" in facts, "a generating operation says where its usage is read"


def _spec(**post: Any) -> dict[str, Any]:
    operation = {"operationId": "x", "responses": {"200": {"description": "ok"}}, **post}
    return {"paths": {"/v1/new": {"post": operation, "get": dict(operation, operationId="y")}}}


def test_a_post_without_facts_is_taken_to_generate_at_the_worst_case() -> None:
    ops = Operations(_spec())
    assert ops.by_label["POST /v1/new"].generates == WORST and not WORST.known
    assert ops.by_label["GET /v1/new"].generates is None  # a GET never generates
    assert ops.by_label["POST /v1/new"].family == "unknown"


def test_facts_are_read_from_the_spec() -> None:
    ops = Operations(
        _spec(
            **{
                "x-workerprobe-family": "responses",
                "x-workerprobe-generates": {"caps": ["max_output_tokens"]},
                "x-workerprobe-usage": {"input": "input_tokens", "output": "output_tokens"},
                "x-workerprobe-creates": {"kind": "response", "delete": "/v1/new/{id}"},
            }
        )
    )
    new = ops.by_label["POST /v1/new"]
    assert new.family == "responses" and new.generates is not None and new.generates.cap == "max_output_tokens"
    assert new.usage is not None and new.usage.tokens({"usage": {"input_tokens": 3, "output_tokens": 4}}) == (3, 4)
    assert new.creates is not None and new.creates.delete == "/v1/new/{id}"
    case = SimpleNamespace(operation=SimpleNamespace(method="post", path="/v1/new"), body={"input": "x"})
    assert new.caps_of(case.body) == []


def test_generated_cases_are_capped_by_the_fields_the_spec_names() -> None:
    def case(path: str, body: dict[str, Any]) -> Any:
        return SimpleNamespace(operation=SimpleNamespace(method="post", path=path, label=f"POST {path}"), body=body)

    chat = case("/v1/chat/completions", {"model": "m", "max_completion_tokens": 500})
    contract.cap_generation(chat)
    assert chat.body == {"model": "m", "max_completion_tokens": 16}  # lowered, none added
    run = case("/v1/threads/{thread_id}/runs", {"assistant_id": "a"})
    contract.cap_generation(run)
    assert run.body["max_completion_tokens"] == 16
    assistant = case("/v1/assistants", {"model": "m"})
    contract.cap_generation(assistant)
    contract.tag(assistant, "wp-1")
    assert assistant.body == {"model": "m", "metadata": {"workerprobe_run": "wp-1"}}


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("POST", "/v1/threads/runs", "POST /v1/threads/runs"),
        ("POST", "/v1/threads/thread_1/runs", "POST /v1/threads/{thread_id}/runs"),
        ("GET", "/v1/threads/t/runs/r", "GET /v1/threads/{thread_id}/runs/{run_id}"),
        # a Worker served under a prefix (Cloudflare's /ai/v1)
        ("POST", "/client/v4/accounts/a/ai/v1/chat/completions", "POST /v1/chat/completions"),
        ("GET", "/models/search", "GET /models/search"),
        ("GET", "/v1/models/search", "GET /v1/models/{model}"),
        ("DELETE", "/v1/chat/completions", None),
    ],
)
def test_a_request_is_booked_under_the_operation_it_hit(method: str, path: str, label: str | None) -> None:
    found = operations.load().match(method, path)
    assert (found.label if found else None) == label


def test_families_core_and_stateful_reads_come_from_the_spec() -> None:
    ops = operations.load()
    assert ops.families == (
        "models",
        "chat",
        "embeddings",
        "responses",
        "conversations",
        "assistants",
        "threads",
        "runs",
    )
    assert ops.core("responses") == ("POST /v1/responses",)
    assert ops.core("chat") == ("POST /v1/chat/completions",)
    assert ops.family_of("TRACE /models/search") == "models"
    # the GETs the spec's links lead to: where an object just created must be found
    assert set(ops.labels(linked_read=True)) == {
        "GET /v1/assistants/{assistant_id}",
        "GET /v1/threads/{thread_id}",
        "GET /v1/threads/{thread_id}/messages/{message_id}",
        "GET /v1/threads/{thread_id}/runs/{run_id}",
        "GET /v1/threads/{thread_id}/messages",
        "GET /v1/threads/{thread_id}/runs",
        "GET /v1/responses/{response_id}",
        "GET /v1/responses/{response_id}/input_items",
        "GET /v1/conversations/{conversation_id}",
        "GET /v1/conversations/{conversation_id}/items",
        "GET /v1/conversations/{conversation_id}/items/{item_id}",
    }


def test_every_selftest_scope_names_a_defect() -> None:
    from workerprobe.suite.defects import DEFECTS, SCOPES

    assert set(SCOPES) <= set(DEFECTS)
    assert all(isinstance(scope, str) and scope for scope in SCOPES.values())


def test_a_targets_key_is_never_in_its_repr() -> None:
    """A failing scenario's traceback shows its arguments (the target among them): the key stays out."""
    from workerprobe.suite.target import Target

    shown = repr(Target(root="https://w.example", api_key="sk-secret-key", embedded=False))
    assert "sk-secret-key" not in shown and "w.example" in shown
