"""The asynchronous batch API (Workers AI docs, "Asynchronous Batch API", REST and binding pages).

    POST .../ai/run/{model}?queueRequest=true  {"requests": [{...input, "external_reference"?}, ...]}
      -> {"result": {"status": "queued", "request_id": <uuid>, "model": ...}}
    POST .../ai/run/{model}?queueRequest=true  {"request_id": <uuid>}
      -> {"result": {"status": "queued" | "running", "request_id", "model"}} while it waits, then
      -> {"result": {"responses": [{"id": i, "result": {...}, "success": true,
                                    "external_reference": ...}, ...], "usage": {...}}}

The whole payload must be under 10 MB. Every request is checked against the model's input schema
when the batch is sent (a bad one refuses the batch, 400 / 5006); each is generated, metered and
answered when the batch has run (`batch_queue_s` queued, then `batch_run_s` running, on the
emulator's clock). Per-minute limits and capacity do not apply: the docs promise that a batch is
fulfilled eventually instead of failing on capacity.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workerprobe.emulator.errors import BadInput, UpstreamError

__all__ = ["MAX_BATCH_BYTES", "Batches"]

MAX_BATCH_BYTES = 10 * 1024 * 1024  # "Ensure that the total payload is under 10 MB."
KEPT = 10_000  # the newest batches kept


@dataclass
class Job:
    model: str
    account: str
    requests: list[dict[str, Any]]
    references: list[Any]
    sent: float
    result: dict[str, Any] | None = field(default=None)


class Batches:
    def __init__(self, now: Callable[[], float], queue_s: float, run_s: float) -> None:
        self.now = now
        self.queue_s = queue_s
        self.run_s = run_s
        self.jobs: OrderedDict[str, Job] = OrderedDict()

    def submit(
        self, account: str, model: str, body: Any, size: int, check: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        if size >= MAX_BATCH_BYTES:
            raise UpstreamError("request_too_large")
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise BadInput("required properties at '/' are 'requests' (a non-empty array) or 'request_id'")
        inputs: list[dict[str, Any]] = []
        references: list[Any] = []
        for i, request in enumerate(requests):
            if not isinstance(request, dict):
                raise BadInput(f"Type mismatch of '/requests/{i}', '{type(request).__name__}' not in 'object'")
            inputs.append({k: v for k, v in request.items() if k != "external_reference"})
            references.append(request.get("external_reference"))
            check(inputs[-1])
        request_id = str(uuid.uuid4())
        self.jobs[request_id] = Job(model, account, inputs, references, self.now())
        while len(self.jobs) > KEPT:
            self.jobs.popitem(last=False)
        return {"status": "queued", "request_id": request_id, "model": model}

    def poll(
        self, account: str, model: str, request_id: Any, answer: Callable[[dict[str, Any]], tuple[Any, dict[str, int]]]
    ) -> dict[str, Any]:
        """The batch's status, or its responses once it has run (`answer` generates one request's
        result and usage; it is called once per request, the first time the results are read)."""
        job = self.jobs.get(request_id) if isinstance(request_id, str) else None
        if job is None or job.account != account or job.model != model:
            raise BadInput(f"No batch request found with request_id {request_id!r}")
        waited = self.now() - job.sent
        if waited < self.queue_s + self.run_s:
            status = "queued" if waited < self.queue_s else "running"
            return {"status": status, "request_id": request_id, "model": model}
        if job.result is None:
            job.result = self._run(job, answer)
        return job.result

    @staticmethod
    def _run(job: Job, answer: Callable[[dict[str, Any]], tuple[Any, dict[str, int]]]) -> dict[str, Any]:
        responses: list[dict[str, Any]] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for i, (request, reference) in enumerate(zip(job.requests, job.references, strict=True)):
            try:
                result, used = answer(request)
            except UpstreamError as error:
                responses.append(
                    {
                        "id": i,
                        "success": False,
                        "errors": [{"code": error.code, "message": error.message}],
                        "external_reference": reference,
                    }
                )
                continue
            for key in usage:
                usage[key] += int(used.get(key) or 0)
            responses.append({"id": i, "result": result, "success": True, "external_reference": reference})
        return {"responses": responses, "usage": usage}
