"""The gateway's own time in every answer (`x-workerprobe-overhead-ms`) and in its histogram,
against what the gateway itself recorded: its time to the headers less its wait on Workers AI."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import CHAT_MODEL, Gateway


def _sums(gateway: Gateway) -> dict[tuple[str, str], float]:
    """(metric, label value) -> the histogram's _sum and _count."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(gateway.http.get("/metrics").text):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                label = sample.labels.get("endpoint") or sample.labels.get("model") or ""
                out[(sample.name, label)] = sample.value
    return out


def test_the_header_is_the_time_to_the_headers_less_the_upstream_wait(gateway: Gateway) -> None:
    before = _sums(gateway)
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 8}
    answer = gateway.http.post("/v1/chat/completions", json=body)
    after = _sums(gateway)
    assert answer.status_code == 200

    def delta(name: str, label: str) -> float:
        return after.get((name, label), 0.0) - before.get((name, label), 0.0)

    endpoint = "create_chat_completion"
    assert delta("workerprobe_gateway_overhead_seconds_count", endpoint) == 1
    total = delta("workerprobe_request_seconds_sum", endpoint)
    waited = delta("workerprobe_upstream_seconds_sum", CHAT_MODEL)
    own = delta("workerprobe_gateway_overhead_seconds_sum", endpoint)
    assert waited > 0 and 0 <= own < total
    assert abs(own - (total - waited)) < 1e-6  # what the gateway recorded, to the microsecond
    assert abs(float(answer.headers["x-workerprobe-overhead-ms"]) / 1000 - own) < 1e-6


def test_every_answer_says_it_streams_errors_and_stored_objects_too(gateway: Gateway) -> None:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True}
    with gateway.http.stream("POST", "/v1/chat/completions", json=body) as streamed:
        assert float(streamed.headers["x-workerprobe-overhead-ms"]) >= 0
    for answer in (
        gateway.http.get("/v1/models"),
        gateway.http.get("/v1/assistants/asst_nobody"),
        gateway.http.post("/v1/threads", json={}),
    ):
        assert float(answer.headers["x-workerprobe-overhead-ms"]) >= 0, answer.request.url
