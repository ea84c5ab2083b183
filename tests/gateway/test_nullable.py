"""Explicit nulls, field by field: for every create and modify the spec has, each field of its body
sent as null is either refused (400 naming it) or accepted, and then every read of the object still
matches the spec's schema (an accepted `"tools": null` read back as null crashes an SDK user's
`for t in assistant.tools`). Found by plain `schemathesis run` once; here for every field."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.gateway.conftest import CHAT_MODEL, Gateway
from workerprobe.suite.operations import SPEC

_SPEC = yaml.safe_load(SPEC.read_text())
_REGISTRY = Registry().with_resource("urn:spec", Resource(contents=_SPEC, specification=DRAFT202012))


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": f"urn:spec#/components/schemas/{name}"}


def _valid(body: Any, name: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema(name), registry=_REGISTRY)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def _fields(path: str, method: str) -> list[str]:
    body = _SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = _SPEC["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    properties = dict(body.get("properties", {}))
    for part in body.get("allOf", []):
        if "$ref" in part:
            part = _SPEC["components"]["schemas"][part["$ref"].rsplit("/", 1)[-1]]
        properties.update(part.get("properties", {}))
    return sorted(properties)


def _check(answer: httpx.Response, field: str) -> bool:
    """True when the null was accepted; a refusal must be a 400 naming the field."""
    if answer.status_code == 400:
        assert answer.json()["error"]["param"] == field, answer.text
        return False
    assert answer.status_code == 200, (field, answer.status_code, answer.text[:300])
    return True


@pytest.mark.parametrize("field", _fields("/v1/assistants/{assistant_id}", "post"))
def test_an_assistant_modified_with_a_null_field_still_reads_as_an_assistant(gateway: Gateway, field: str) -> None:
    made = gateway.http.post("/v1/assistants", json={"model": CHAT_MODEL, "name": "n"}).json()
    answer = gateway.http.post(f"/v1/assistants/{made['id']}", json={field: None})
    if _check(answer, field):
        read = gateway.http.get(f"/v1/assistants/{made['id']}").json()
        assert _valid(read, "Assistant") == [], (field, read)
        listed = gateway.http.get("/v1/assistants", params={"limit": 100}).json()
        assert _valid(listed, "AssistantList") == [], field


@pytest.mark.parametrize("field", _fields("/v1/assistants", "post"))
def test_an_assistant_created_with_a_null_field_reads_as_an_assistant(gateway: Gateway, field: str) -> None:
    body: dict[str, Any] = {"model": CHAT_MODEL, field: None}
    answer = gateway.http.post("/v1/assistants", json=body)
    if _check(answer, field):
        read = gateway.http.get(f"/v1/assistants/{answer.json()['id']}").json()
        assert _valid(read, "Assistant") == [], (field, read)


@pytest.mark.parametrize("field", _fields("/v1/threads", "post"))
def test_a_thread_created_with_a_null_field_reads_as_a_thread(gateway: Gateway, field: str) -> None:
    answer = gateway.http.post("/v1/threads", json={field: None})
    if _check(answer, field):
        read = gateway.http.get(f"/v1/threads/{answer.json()['id']}").json()
        assert _valid(read, "Thread") == [], (field, read)


@pytest.mark.parametrize("field", _fields("/v1/threads/{thread_id}/messages", "post"))
def test_a_message_created_with_a_null_field_reads_as_a_message(gateway: Gateway, field: str) -> None:
    thread = gateway.http.post("/v1/threads", json={}).json()["id"]
    body: dict[str, Any] = {"role": "user", "content": "hi", field: None}
    answer = gateway.http.post(f"/v1/threads/{thread}/messages", json=body)
    if _check(answer, field):
        read = gateway.http.get(f"/v1/threads/{thread}/messages/{answer.json()['id']}").json()
        assert _valid(read, "Message") == [], (field, read)


@pytest.mark.parametrize("field", _fields("/v1/threads/{thread_id}/runs", "post"))
def test_a_run_created_with_a_null_field_reads_as_a_run(gateway: Gateway, field: str) -> None:
    assistant = gateway.http.post("/v1/assistants", json={"model": CHAT_MODEL}).json()["id"]
    thread = gateway.http.post("/v1/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]
    body: dict[str, Any] = {"assistant_id": assistant, "max_completion_tokens": 8, field: None}
    answer = gateway.http.post(f"/v1/threads/{thread}/runs", json=body)
    if _check(answer, field):
        read = gateway.http.get(f"/v1/threads/{thread}/runs/{answer.json()['id']}").json()
        assert _valid(read, "Run") == [], (field, read)
