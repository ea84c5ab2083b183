"""The gateway in front of an upstream that misbehaves (workerprobe.hostile): every answer is a
client-facing error in the OpenAI envelope, never the upstream's own text, and the gateway goes on
answering. The memory figures (peak and after, per behaviour) are `make chaos`'s."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import CHAT_MODEL, KEY
from workerprobe.procs import gateway_env, serve

# mode: (status, code) of the gateway's answer to a plain chat completion
PLAIN = {
    "html-error": (502, "upstream_error"),
    "invalid-json": (502, "upstream_error"),
    "huge-body": (502, "upstream_error"),
    "endless-chunked": (502, "upstream_error"),
    "huge-headers": (502, "upstream_error"),
    "drip": (504, "upstream_timeout"),
}
BODY = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module", params=[*PLAIN, "endless-stream", "drip-stream"])
def hostile_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(["--mode", request.param], module="workerprobe.hostile") as upstream:
        env = gateway_env(
            upstream.url,
            api_key=KEY,
            token="t",
            database=str(tmp_path_factory.mktemp("hostile") / "g.sqlite3"),
            upstream_timeout_s="3",
            upstream_max_body_bytes=str(1024 * 1024),
            upstream_max_stream_bytes=str(1024 * 1024),
        )
        with serve(["gateway"], env=env) as gateway:
            yield gateway.url


def _mode(url: str, request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["hostile_gateway"])


def test_a_misbehaving_upstream_is_an_error_in_the_envelope(
    hostile_gateway: str, request: pytest.FixtureRequest
) -> None:
    mode = _mode(hostile_gateway, request)
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=hostile_gateway, headers=headers, timeout=60) as http:
        if mode in PLAIN:
            answer = http.post("/v1/chat/completions", json=BODY)
            error = answer.json()["error"]
            assert (answer.status_code, error["code"]) == PLAIN[mode], answer.text
            assert "<html" not in answer.text.lower() and "not json" not in answer.text  # the upstream's text stays out
            assert error["type"] == "server_error" and error["message"]
        else:  # a stream whose events never end, or drip: the client's stream ends with an error event
            with http.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as answer:
                text = b"".join(answer.iter_bytes()).decode()
            assert answer.status_code in (200, 502, 504), text[:300]
            if answer.status_code == 200:  # begun: an error event ends it (then [DONE])
                events = [line for line in text.splitlines() if line.startswith("data: ")]
                assert events[-1] == "data: [DONE]" and '"error"' in events[-2], events[-2][:300]
                assert '"upstream_' in events[-2]
        assert http.get("/health").status_code == 200  # and the gateway goes on


def test_a_misbehaving_upstream_under_the_responses_api(hostile_gateway: str, request: pytest.FixtureRequest) -> None:
    """The Responses API's reads of the upstream, through the chat core (a Llama model) and the
    upstream's own /ai/v1/responses (GPT-OSS, read by its own call): bounded as chat's, the same
    errors in the envelope, and a stream that breaks ends with `error` then `response.failed`."""
    mode = _mode(hostile_gateway, request)
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=hostile_gateway, headers=headers, timeout=60) as http:
        for model in (CHAT_MODEL, "@cf/openai/gpt-oss-20b"):
            body = {"model": model, "input": "hi", "max_output_tokens": 16}
            if mode in PLAIN:
                answer = http.post("/v1/responses", json=body)
                error = answer.json()["error"]
                assert (answer.status_code, error["code"]) == PLAIN[mode], (model, answer.text)
                assert "<html" not in answer.text.lower() and "not json" not in answer.text
            else:
                with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as answer:
                    text = b"".join(answer.iter_bytes()).decode()
                assert answer.status_code in (200, 502, 504), text[:300]
                if answer.status_code == 200:
                    kinds = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
                    assert kinds[-2:] == ["error", "response.failed"] or kinds[-1] == "response.failed", kinds[-3:]
        assert http.get("/health").status_code == 200
