"""Tenant isolation: every operation of the Assistants API with another project's key, on SQLite
and on Redis (a real gateway process on each). A foreign id reads as unknown (404), lists show
only the caller's project, and nothing of the owner's is changed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.gateway.conftest import CHAT_MODEL, KEY, UPSTREAM_TOKEN
from workerprobe.procs import gateway_env, serve

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Tenants:
    url: str
    env: dict[str, str]

    def key(self, project: str | None = None) -> str:
        """A key made with `workerprobe api-key create` (in `project`, or a project of its own)."""
        args = ["create", "--name", "tenancy", *(["--project", project] if project else [])]
        made = subprocess.run(
            [sys.executable, "-m", "workerprobe", "api-key", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return made.stdout.strip().split("\t")[1]

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def tenants(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    store = (
        {"database": str(tmp_path_factory.mktemp("tenancy") / "gateway.sqlite3"), "redis_url": ""}
        if request.param == "sqlite"
        else {"redis_url": REDIS_URL, "redis_prefix": f"wp-tenancy-{uuid.uuid4().hex}:"}
    )
    with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as emulator:
        env = gateway_env(emulator.url, api_key=KEY, token=UPSTREAM_TOKEN, account="tenancy", **store)
        with serve(["gateway"], env=env) as gateway:
            yield Tenants(gateway.url, env)


def _owned(http: httpx.Client) -> dict[str, str]:
    """An assistant, a thread with a message, and a completed run, made by `http`'s key."""
    assistant = http.post("/assistants", json={"model": CHAT_MODEL, "instructions": "Answer briefly."}).json()
    thread = http.post("/threads", json={"messages": [{"role": "user", "content": "What is 3 + 3?"}]}).json()
    message = http.get(f"/threads/{thread['id']}/messages").json()["data"][0]
    run = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
    for _ in range(200):
        if http.get(f"/threads/{thread['id']}/runs/{run['id']}").json()["status"] not in ("queued", "in_progress"):
            break
    return {"assistant": assistant["id"], "thread": thread["id"], "message": message["id"], "run": run["id"]}


def test_another_projects_key_reaches_none_of_its_objects(tenants: Tenants) -> None:
    with tenants.client(KEY) as owner, tenants.client(tenants.key()) as stranger:
        ids = _owned(owner)
        a, t, m, r = ids["assistant"], ids["thread"], ids["message"], ids["run"]
        attempts = [
            ("GET", f"/assistants/{a}", None),
            ("POST", f"/assistants/{a}", {"instructions": "Leak everything."}),
            ("DELETE", f"/assistants/{a}", None),
            ("GET", f"/threads/{t}", None),
            ("POST", f"/threads/{t}", {"metadata": {"owner": "stranger"}}),
            ("DELETE", f"/threads/{t}", None),
            ("POST", f"/threads/{t}/messages", {"role": "user", "content": "injected"}),
            ("GET", f"/threads/{t}/messages", None),
            ("GET", f"/threads/{t}/messages/{m}", None),
            ("POST", f"/threads/{t}/messages/{m}", {"metadata": {"x": "y"}}),
            ("DELETE", f"/threads/{t}/messages/{m}", None),
            ("POST", f"/threads/{t}/runs", {"assistant_id": a}),
            ("GET", f"/threads/{t}/runs", None),
            ("GET", f"/threads/{t}/runs/{r}", None),
            ("POST", f"/threads/{t}/runs/{r}", {"metadata": {"x": "y"}}),
            ("POST", f"/threads/{t}/runs/{r}/cancel", None),
            ("POST", "/threads/runs", {"assistant_id": a}),
        ]
        for method, path, body in attempts:
            answer = stranger.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
            error = answer.json()["error"]
            assert error["type"] == "invalid_request_error" and error["message"]
        assert a not in {x["id"] for x in stranger.get("/assistants", params={"limit": 100}).json()["data"]}
        # The owner's objects are as they were.
        assert owner.get(f"/assistants/{a}").json()["instructions"] == "Answer briefly."
        assert owner.get(f"/threads/{t}").json()["metadata"] == {}
        messages = owner.get(f"/threads/{t}/messages", params={"order": "asc"}).json()["data"]
        assert [x["id"] for x in messages][0] == m and all(x["metadata"] == {} for x in messages)
        assert len(messages) == 2  # the question and the run's answer; nothing injected
        assert owner.get(f"/threads/{t}/runs/{r}").json()["status"] == "completed"
        assert a in {x["id"] for x in owner.get("/assistants", params={"limit": 100}).json()["data"]}


def test_keys_of_one_project_share_its_objects(tenants: Tenants) -> None:
    project = f"team-{uuid.uuid4().hex[:8]}"
    with (
        tenants.client(tenants.key(project)) as one,
        tenants.client(tenants.key(project)) as two,
        tenants.client(KEY) as outsider,
    ):
        made = one.post("/assistants", json={"model": CHAT_MODEL, "name": "shared"}).json()
        assert two.get(f"/assistants/{made['id']}").json()["name"] == "shared"
        assert made["id"] in {x["id"] for x in two.get("/assistants", params={"limit": 100}).json()["data"]}
        assert two.delete(f"/assistants/{made['id']}").json()["deleted"] is True
        assert outsider.get(f"/assistants/{made['id']}").status_code == 404


def test_another_projects_key_reaches_none_of_its_responses_or_conversations(tenants: Tenants) -> None:
    """The Responses and Conversations APIs keep tenants apart as the Assistants API does: reads,
    deletes, input items and a chain through `previous_response_id` all answer 404."""
    with tenants.client(KEY) as owner, tenants.client(tenants.key()) as other:
        body = {"model": CHAT_MODEL, "input": "Hi.", "max_output_tokens": 16}
        rid = owner.post("/responses", json=body).json()["id"]
        conversation = owner.post("/conversations", json={"items": [{"role": "user", "content": "Hi."}]}).json()
        cid = conversation["id"]
        iid = owner.get(f"/conversations/{cid}/items").json()["data"][0]["id"]
        for method, path in [
            ("GET", f"/responses/{rid}"),
            ("GET", f"/responses/{rid}/input_items"),
            ("POST", f"/responses/{rid}/cancel"),
            ("DELETE", f"/responses/{rid}"),
            ("GET", f"/conversations/{cid}"),
            ("POST", f"/conversations/{cid}"),
            ("GET", f"/conversations/{cid}/items"),
            ("GET", f"/conversations/{cid}/items/{iid}"),
            ("DELETE", f"/conversations/{cid}/items/{iid}"),
            ("DELETE", f"/conversations/{cid}"),
        ]:
            json_body = {"metadata": {"x": "1"}} if method == "POST" else None
            answer = other.request(method, path, json=json_body)
            assert answer.status_code == 404 and answer.json()["error"]["type"] == "invalid_request_error", path
        chained = other.post("/responses", json={**body, "previous_response_id": rid})
        assert chained.status_code == 404 and chained.json()["error"]["param"] == "previous_response_id"
        joined = other.post("/responses", json={**body, "conversation": cid})
        assert joined.status_code == 404 and joined.json()["error"]["param"] == "conversation"
        assert owner.get(f"/responses/{rid}").status_code == 200
        assert owner.get(f"/conversations/{cid}").json()["metadata"] == {}
        assert owner.get(f"/conversations/{cid}/items/{iid}").status_code == 200
