"""Workers AI as it is at the end of 2026 (late-2026-updates.md): `options.rejectIfBusy`, the
batch API, AI Gateway's ids, a stream buffered by a proxy."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from tests.emulator.conftest import TEXT_MODEL, Emulator, error_of

ASK = {"messages": [{"role": "user", "content": "Describe a harbour"}], "max_tokens": 16}
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_a_busy_model_queues_the_request_or_with_reject_if_busy_answers_3040(emulator: Emulator) -> None:
    busy = {"x-emulate-fault": "busy"}
    assert emulator.run(TEXT_MODEL, ASK, **busy).status_code == 200  # queued, then served
    refused = emulator.run(TEXT_MODEL, {**ASK, "options": {"rejectIfBusy": True}}, **busy)
    assert error_of(refused) == (429, 3040, "Capacity temporarily exceeded, please try again.")
    assert emulator.run(TEXT_MODEL, {**ASK, "options": {"rejectIfBusy": True}}).status_code == 200  # not busy


def test_past_the_models_concurrency_reject_if_busy_fails_at_once(
    start_emulator: Callable[..., AbstractContextManager[Emulator]],
) -> None:
    """One generation at a time: while a slow one runs, a second with rejectIfBusy is refused and
    one without waits for the slot and is served."""
    with start_emulator(WORKERPROBE_EMULATOR_MODEL_CONCURRENCY="1", WORKERPROBE_EMULATOR_TTFT_MS="1500") as e:
        answers: list[int] = []
        started = threading.Event()

        def slow() -> None:
            started.set()
            answers.append(e.run(TEXT_MODEL, ASK).status_code)

        first = threading.Thread(target=slow)
        first.start()
        started.wait()
        # the first holds the slot until its answer: poll until the emulator reports it busy
        refused = None
        for _ in range(50):
            refused = e.run(TEXT_MODEL, {**ASK, "options": {"rejectIfBusy": True}})
            if refused.status_code == 429:
                break
        assert refused is not None and error_of(refused)[:2] == (429, 3040)
        assert e.run(TEXT_MODEL, ASK).status_code == 200  # waited for the slot
        first.join()
        assert answers == [200]


def test_the_batch_api_queues_runs_and_answers_each_request(
    start_emulator: Callable[..., AbstractContextManager[Emulator]],
) -> None:
    env = {"WORKERPROBE_EMULATOR_BATCH_QUEUE_S": "60", "WORKERPROBE_EMULATOR_BATCH_RUN_S": "60"}
    with start_emulator(**env) as e:
        url = e.path("acct", f"run/{TEXT_MODEL}?queueRequest=true")
        sent = e.http.post(
            url, json={"requests": [{**ASK, "external_reference": "one"}, {"prompt": "Say hi", "max_tokens": 4}]}
        )
        assert sent.status_code == 200, sent.text
        queued = sent.json()["result"]
        assert queued["status"] == "queued" and queued["model"] == TEXT_MODEL
        request_id = queued["request_id"]
        uuid.UUID(request_id)

        def poll() -> dict[str, object]:
            answer = e.http.post(url, json={"request_id": request_id})
            assert answer.status_code == 200, answer.text
            result: dict[str, object] = answer.json()["result"]
            return result

        assert poll()["status"] == "queued"
        e.clock(advance_s=61)
        assert poll()["status"] == "running"
        e.clock(advance_s=60)
        done = poll()
        responses = done["responses"]
        assert isinstance(responses, list) and [r["id"] for r in responses] == [0, 1]
        assert [r["external_reference"] for r in responses] == ["one", None]
        assert all(r["success"] and r["result"]["response"] for r in responses)
        assert done["usage"]["completion_tokens"] == sum(  # type: ignore[index]
            r["result"]["usage"]["completion_tokens"] for r in responses
        )
        assert poll() == done  # read again, the same answers (generated and metered once)


def test_a_batch_is_checked_when_sent_and_capped_at_10_mb(emulator: Emulator) -> None:
    url = emulator.path("acct", f"run/{TEXT_MODEL}?queueRequest=true")
    bad = emulator.http.post(url, json={"requests": [ASK, {"messages": "not a list"}]})
    assert error_of(bad)[:2] == (400, 5006)
    assert error_of(emulator.http.post(url, json={"requests": []}))[:2] == (400, 5006)
    unknown = emulator.http.post(url, json={"request_id": str(uuid.uuid4())})
    assert error_of(unknown)[:2] == (400, 5006)
    big = {"requests": [{"prompt": "x" * 100_000}] * 110}  # about 11 MB
    assert error_of(emulator.http.post(url, json=big))[:2] == (413, 3006)


def test_through_ai_gateway_one_uuid7_names_the_request_the_log_and_the_event(emulator: Emulator) -> None:
    plain = emulator.run(TEXT_MODEL, ASK)
    assert "cf-aig-log-id" not in plain.headers
    seen = set()
    for headers in (
        {"cf-aig-gateway-id": "my-gateway"},
        {"cf-aig-gateway-id": "my-gateway", "x-emulate-fault": "3040"},
    ):
        answer = emulator.run(TEXT_MODEL, ASK, **headers)
        ids = {answer.headers[f"cf-aig-{name}-id"] for name in ("request", "log", "event")}
        assert len(ids) == 1 and UUID7.match(next(iter(ids))), ids
        seen |= ids
    assert len(seen) == 2  # one per request


def test_a_buffered_stream_arrives_in_one_piece_at_the_end(emulator: Emulator) -> None:
    body = {**ASK, "stream": True}
    reads = []
    with emulator.http.stream(
        "POST",
        emulator.path("acct", f"run/{TEXT_MODEL}"),
        json=body,
        headers={"x-emulate-fault": "buffered-stream", "x-request-id": "buffered-1"},
    ) as response:
        assert response.status_code == 200
        reads = [chunk for chunk in response.iter_raw() if chunk]
    text = b"".join(reads)
    assert text.count(b"data: ") > 4 and text.rstrip().endswith(b"data: [DONE]")
    trace = httpx.get(f"{emulator.url}/__emulator/trace?ids=buffered-1").json()["buffered-1"]
    assert len(set(trace["tokens"])) == 1 and len(trace["tokens"]) > 1  # every token sent at one instant
