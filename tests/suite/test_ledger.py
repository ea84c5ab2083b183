"""Nothing left behind: what a run creates on a target is deleted at its end, and `clean` deletes
what earlier runs left (against the real gateway and emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from workerprobe.suite import operations
from workerprobe.suite.ledger import Ledger, clean
from workerprobe.suite.operations import Operation
from workerprobe.suite.target import Target, chat_model, embedded

MODEL = chat_model()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with embedded(tmp_path_factory.mktemp("ledger") / "g.sqlite3") as started:
        yield started


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERPROBE_STATE_DIR", str(tmp_path / "state"))


def _client(target: Target) -> httpx.Client:
    return httpx.Client(base_url=target.v1, headers={"Authorization": f"Bearer {target.api_key}"}, timeout=30)


def _operation(response: httpx.Response) -> Operation:
    found = operations.load().match(response.request.method, response.request.url.path)
    assert found is not None
    return found


def test_what_a_run_creates_is_deleted_at_its_end(gateway: Target) -> None:
    ledger = Ledger(gateway.root, gateway.api_key, "run-1", "gw0")
    with _client(gateway) as http:
        assistant = http.post("/assistants", json={"model": MODEL})
        thread = http.post("/threads", json={})
        for response in (assistant, thread):
            ledger.created(_operation(response), response.json())
        assert ledger.delete_all() == (2, 0)
        assert http.get(f"/assistants/{assistant.json()['id']}").status_code == 404
        assert http.get(f"/threads/{thread.json()['id']}").status_code == 404
    assert not ledger.path.exists()


def test_clean_removes_what_earlier_runs_left(gateway: Target) -> None:
    with _client(gateway) as http:
        tagged = http.post("/assistants", json={"model": MODEL, "metadata": {"workerprobe_run": "old"}}).json()["id"]
        mine = http.post("/assistants", json={"model": MODEL}).json()["id"]
        thread = http.post("/threads", json={})
        Ledger(gateway.root, gateway.api_key, "old", "gw1").created(_operation(thread), thread.json())
        deleted, left = clean(gateway.root, gateway.api_key)
        assert (deleted, left) == (2, 0)
        assert http.get(f"/assistants/{tagged}").status_code == 404
        assert http.get(f"/threads/{thread.json()['id']}").status_code == 404
        assert http.get(f"/assistants/{mine}").status_code == 200  # not the suite's: left alone
