"""Leave nothing behind: every object the suite creates on a target is written down as it is
created (a JSON-lines file per target under the state directory) and deleted at the end of the
run, after failures too. `workerprobe clean` deletes what earlier runs left: what their ledgers
name, and every listable object whose metadata carries a `workerprobe_run` id (what is created,
where its id is, how it is deleted and listed: the spec's operation facts, `suite/operations.py`).

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
from workerprobe.suite import bounds, operations
from workerprobe.suite.operations import Operation

__all__ = ["Ledger", "clean"]


def _folder_for(root: str) -> Path:
    digest = hashlib.sha256(root.encode()).hexdigest()[:16]
    return state_dir() / "ledgers" / digest


class Ledger:
    """The objects one test process created on one target."""

    def __init__(self, root: str, api_key: str, run_id: str, worker: str = "main") -> None:
        self.root, self.api_key, self.run_id = root, api_key, run_id
        self.path = _folder_for(root) / f"{run_id}-{worker}.jsonl"
        self._lock = threading.Lock()

    def _write(self, delete: str, object_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"delete": delete, "id": object_id, "run": self.run_id, "root": self.root})
        with self._lock, self.path.open("a") as out:
            out.write(line + "\n")

    def created(self, operation: Operation, body: Any) -> None:
        """Note what a 2xx answer (its JSON body) to a create made, when it can be deleted."""
        creates = operation.creates
        if creates is None or creates.delete is None or not isinstance(body, dict) or body.get("object") == "list":
            return
        object_id = body.get(creates.id)
        if isinstance(object_id, str) and object_id:
            self._write(creates.delete, object_id)

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


def _delete_path(entry: dict[str, Any]) -> str:
    """Where an entry is deleted (ledgers written before the spec said so name a kind)."""
    template = entry.get("delete") or f"/v1/{entry['kind']}s/{{id}}"
    return str(template).replace("{id}", str(entry["id"]))


def _delete(path: Path, root: str, api_key: str) -> tuple[int, int]:
    entries = list(_entries(path))
    keep, deleted = [], 0
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    with bounds.client(30, base_url=root, headers=headers) as client:
        for entry in entries:
            try:
                status = client.delete(_delete_path(entry)).status_code
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


def _tagged(client: httpx.Client, listing: Operation, run_id: str | None = None) -> Iterator[str]:
    """The ids on a list whose metadata carries a run id (that run's, when given; at most 10,000)."""
    after: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        response = client.get(listing.path, params=params)
        if response.status_code != 200:
            return
        page = response.json()
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list) or not data:
            return
        for item in data:
            tag = (item.get("metadata") or {}).get("workerprobe_run") if isinstance(item, dict) else None
            if tag and (run_id is None or tag == run_id):
                yield str(item["id"])
        if not page.get("has_more"):
            return
        after = str(data[-1].get("id"))


def _listable() -> dict[str, Operation]:
    """Where tagged objects that can be listed are deleted, and the operation that lists them."""
    ops = operations.load()
    found = {}
    for op in ops:
        creates = op.creates
        listing = ops.listing(creates.kind) if creates is not None and creates.tag else None
        if creates is not None and creates.delete is not None and listing is not None:
            found[creates.delete] = listing
    return found


def clean(root: str, api_key: str, run_id: str | None = None) -> tuple[int, int]:
    """Delete every object earlier runs left on this target (only one run's, given its id: another
    run on the same target may be under way); returns (deleted, left)."""
    deleted = left = 0
    for ledger in sorted(_folder_for(root).glob(f"{run_id}-*.jsonl" if run_id else "*.jsonl")):
        done, kept = _delete(ledger, root, api_key)
        deleted, left = deleted + done, left + kept
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    with bounds.client(30, base_url=root, headers=headers) as client:
        for delete, listing in _listable().items():
            for object_id in list(_tagged(client, listing, run_id)):
                status = client.delete(delete.replace("{id}", object_id)).status_code
                if 200 <= status < 300:
                    deleted += 1
                else:
                    left += 1
    return deleted, left
