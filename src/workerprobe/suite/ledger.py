"""Leave nothing behind: every object the suite creates on a target is written down as it is
created (a JSON-lines file per target under the state directory) and deleted at the end of the
run, after failures too. `workerprobe clean` deletes what earlier runs left: what their ledgers
name, and every assistant whose metadata carries a `workerprobe_run` id.

Threads cannot be listed in the OpenAI API, so the ledger is the only way back to them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from workerprobe.paths import state_dir

__all__ = ["Ledger", "clean"]

# Creates and the kind of object each answers with; deleting a thread deletes its messages and runs.
_CREATES = {
    "/v1/assistants": "assistant",
    "/v1/threads": "thread",
    "/v1/threads/runs": "thread",  # the run's thread (thread_id in the answer)
}


def _folder_for(root: str) -> Path:
    digest = hashlib.sha256(root.encode()).hexdigest()[:16]
    return state_dir() / "ledgers" / digest


class Ledger:
    """The objects one test process created on one target."""

    def __init__(self, root: str, api_key: str, run_id: str, worker: str = "main") -> None:
        self.root, self.api_key, self.run_id = root, api_key, run_id
        self.path = _folder_for(root) / f"{run_id}-{worker}.jsonl"
        self._lock = threading.Lock()

    def _write(self, kind: str, object_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"kind": kind, "id": object_id, "run": self.run_id, "root": self.root})
        with self._lock, self.path.open("a") as out:
            out.write(line + "\n")

    def created(self, method: str, path: str, path_parameters: dict[str, Any], response: Any) -> None:
        """Note what a 2xx answer to a create made (other answers make nothing to delete)."""
        kind = _CREATES.get(path) if method == "POST" else None
        if kind is None:
            return
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        object_id = body.get("thread_id") if path == "/v1/threads/runs" else body.get("id")
        if isinstance(object_id, str) and object_id:
            self._write(kind, object_id)

    def created_from(self, url: str, method: str, body: Any) -> None:
        """The same, for an exchange seen by an SDK client's hook (the URL is a full one)."""
        path = httpx.URL(url).path
        for create, kind in _CREATES.items():
            if method == "POST" and path.endswith(create) and isinstance(body, dict):
                object_id = body.get("thread_id") if create == "/v1/threads/runs" else body.get("id")
                if isinstance(object_id, str) and object_id and body.get("object") != "list":
                    self._write(kind, object_id)
                return

    def delete_all(self) -> tuple[int, int]:
        """Delete what this run created; returns (deleted, left). The ledger keeps what is left."""
        return _delete(self.path, self.root, self.api_key)


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def _delete(path: Path, root: str, api_key: str) -> tuple[int, int]:
    entries = list(_entries(path))
    keep, deleted = [], 0
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=root, headers=headers, timeout=30) as client:
        for entry in entries:
            try:
                status = client.delete(f"/v1/{entry['kind']}s/{entry['id']}").status_code
            except httpx.HTTPError:
                keep.append(entry)
                continue
            if 200 <= status < 300 or status == 404:
                deleted += 1
            else:
                keep.append(entry)
    if keep:
        path.write_text("".join(json.dumps(e) + "\n" for e in keep))
    elif path.exists():
        path.unlink()
    return deleted, len(keep)


def _tagged_assistants(client: httpx.Client) -> Iterator[str]:
    after: str | None = None
    for _ in range(100):  # at most 10,000 assistants
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        response = client.get("/v1/assistants", params=params)
        if response.status_code != 200:
            return
        page = response.json()
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list) or not data:
            return
        for item in data:
            if isinstance(item, dict) and (item.get("metadata") or {}).get("workerprobe_run"):
                yield str(item["id"])
        if not page.get("has_more"):
            return
        after = str(data[-1].get("id"))


def clean(root: str, api_key: str) -> tuple[int, int]:
    """Delete every object earlier runs left on this target; returns (deleted, left)."""
    deleted = left = 0
    for ledger in sorted(_folder_for(root).glob("*.jsonl")):
        done, kept = _delete(ledger, root, api_key)
        deleted, left = deleted + done, left + kept
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=root, headers=headers, timeout=30) as client:
        for assistant in list(_tagged_assistants(client)):
            status = client.delete(f"/v1/assistants/{assistant}").status_code
            if 200 <= status < 300:
                deleted += 1
            else:
                left += 1
    return deleted, left
