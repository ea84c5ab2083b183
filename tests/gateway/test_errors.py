"""Every error path through raw HTTP and the SDK: the OpenAI envelope, the right status and class."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import CHAT_MODEL, KEY, Gateway


def _envelope(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
def test_missing_or_wrong_key(gateway: Gateway, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings")]:
        response = httpx.request(method, gateway.url + path, headers=headers, json={})
        assert response.status_code == 401
        error = _envelope(response)
        assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"


def test_sdk_wrong_key(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="nope", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": ', None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": 3, "messages": []}', "model"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages.0.role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}', "temperature"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}', "max_tokens"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
    ],
)
def test_bad_input_is_400_with_param(gateway: Gateway, body: bytes, param: str | None) -> None:
    response = gateway.http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = _envelope(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="@cf/nobody/nothing", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"


def test_a_model_the_endpoint_cannot_serve_is_404_as_openai_answers(client: openai.OpenAI) -> None:
    """OpenAI: NotFoundError "This is not a chat model and thus not supported in the
    v1/chat/completions endpoint" (a 400 read as a schema-valid request refused, by schemathesis)."""
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="@cf/baai/bge-base-en-v1.5", messages=[{"role": "user", "content": "x"}])
    assert chat.value.code == "model_not_supported" and "not supported in the v1/chat/completions" in chat.value.message
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="@cf/meta/llama-3.1-8b-instruct-fast", input="x")


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry"),
    [
        ("4006", 429, "insufficient_quota", None),
        ("3036", 429, "insufficient_quota", None),
        ("3021", 429, "rate_limit_exceeded", "10"),
        ("3040", 429, "capacity_exceeded", "1"),
        ("500", 502, "upstream_error", None),
        ("503", 502, "upstream_error", None),
        ("timeout", 504, "upstream_timeout", None),
        # Since September and October 2026 (Cloudflare's changelog):
        ("2021", 429, "insufficient_quota", None),  # prepaid credits exhausted (402)
        ("7013", 503, "service_unavailable", "1"),  # guardrails service failure
        ("2016", 400, "content_filter", None),  # prompt blocked (424)
        ("2009", 502, "upstream_error", None),  # provider credentials rejected (401)
    ],
)
def test_upstream_errors_map_by_code(gateway: Gateway, fault: str, status: int, code: str, retry: str | None) -> None:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"hi EMULATE_FAULT:{fault}"}]}
    for stream in (False, True):
        response = gateway.http.post("/v1/chat/completions", json={**body, "stream": stream})
        assert response.status_code == status
        error = _envelope(response)
        assert error["code"] == code
        assert response.headers.get("retry-after") == retry
        if code == "insufficient_quota":
            assert error["type"] == "insufficient_quota"
            assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("fault", ["2017", "2017-run"])  # response blocked (424; 422 on /run)
def test_a_blocked_response_is_a_completion_ended_by_the_content_filter(client: openai.OpenAI, fault: str) -> None:
    """As OpenAI ends a filtered completion: no text, `finish_reason: "content_filter"` (plain and
    streamed); a blocked prompt (2016) is the 400 above."""
    messages: Any = [{"role": "user", "content": f"hi EMULATE_FAULT:{fault}"}]
    whole = client.chat.completions.create(model=CHAT_MODEL, messages=messages)
    assert whole.choices[0].finish_reason == "content_filter" and whole.choices[0].message.content == ""
    assert whole.usage is not None and whole.usage.completion_tokens == 0
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["content_filter"]


def test_sdk_error_classes_for_upstream_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "EMULATE_FAULT:4006"}])
    assert caught.value.code == "insufficient_quota"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "EMULATE_FAULT:5xx"}])


def test_quota_error_is_not_retried_by_the_sdk(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=3) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": "EMULATE_FAULT:4006"}]
            )
        assert caught.value.response.headers["x-should-retry"] == "false"


def test_unknown_path_and_wrong_method(gateway: Gateway) -> None:
    response = gateway.http.get("/v1/nothing-here")
    assert response.status_code == 404 and _envelope(response)["code"] == "unknown_url"
    response = gateway.http.get("/v1/chat/completions")
    assert response.status_code == 405 and _envelope(response)["code"] == "method_not_allowed"
    response = gateway.http.delete("/v1/embeddings")
    assert response.status_code == 405


def test_oversized_body(gateway: Gateway) -> None:
    big = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    response = gateway.http.post("/v1/chat/completions", json=big)
    assert response.status_code == 413 and _envelope(response)["code"] == "request_too_large"


def test_upstream_unreachable_is_502(tmp_path) -> None:
    from workerprobe.procs import free_port, serve

    env = {
        "API_KEY": "k",
        "CF_API_BASE_URL": f"http://127.0.0.1:{free_port()}/client/v4",
        "WORKERPROBE_GATEWAY_DATABASE": str(tmp_path / "g.sqlite3"),
    }
    with serve(["gateway"], env=env) as server:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 502 and _envelope(response)["code"] == "upstream_error"
