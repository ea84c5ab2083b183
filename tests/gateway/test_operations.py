"""Keys made with `workerprobe api-key`, /metrics and /health."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai

from tests.gateway.conftest import CHAT_MODEL, Gateway


def _cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKERPROBE_GATEWAY_DATABASE": gateway.database}
    return subprocess.run(
        [sys.executable, "-m", "workerprobe", "api-key", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_api_key_create_list_revoke(gateway: Gateway) -> None:
    made = _cli(gateway, "create", "--name", "ci")
    assert made.returncode == 0, made.stderr
    key_id, key = made.stdout.strip().split("\t")
    assert key.startswith("sk-wp-") and key_id.startswith("key_")
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
        assert client.models.list().data
        listed = _cli(gateway, "list").stdout
        assert key_id in listed and key not in listed and "active" in listed  # only a prefix is shown
        assert _cli(gateway, "revoke", key_id).returncode == 0
        assert "revoked" in _cli(gateway, "list").stdout
        try:
            client.models.list()
            raise AssertionError("a revoked key was accepted")
        except openai.AuthenticationError:
            pass
        assert _cli(gateway, "revoke", key_id).returncode == 1


def test_metrics(gateway: Gateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "What is 4 + 4?"}])
    httpx.get(f"{gateway.url}/v1/models")  # a 401
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'workerprobe_requests_total{endpoint="create_chat_completion",status="200"}' in text
    assert f'workerprobe_tokens_total{{kind="completion",model="{CHAT_MODEL}"}}' in text
    assert f'workerprobe_neurons_total{{model="{CHAT_MODEL}"}}' in text
    assert 'workerprobe_errors_total{cause="invalid_api_key"}' in text
    assert "workerprobe_upstream_seconds_bucket" in text


def test_health_reports_the_machine(gateway: Gateway) -> None:
    import platform

    health = httpx.get(f"{gateway.url}/health").json()
    assert health == {"status": "ok", "machine": platform.machine(), "python": platform.python_version()}


def test_embedded_emulator_when_no_upstream_is_configured() -> None:
    from workerprobe.procs import free_port, serve

    env = {
        "API_KEY": "k",
        "CF_ACCOUNT_ID": "",
        "CF_API_TOKEN": "",
        "CF_API_KEY": "",
        "CF_API_BASE_URL": "",
        "WORKERPROBE_GATEWAY_DATABASE": ":memory:",
    }
    with serve(["gateway", "--emulator-port", str(free_port())], env=env) as server:
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0) as client:
            reply = client.chat.completions.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": "What is 2 * 21?"}]
            )
            assert reply.choices[0].message.content == "2 * 21 = 42."


def test_deliberate_default_max_tokens() -> None:
    """With a configured default, a request without max_tokens is not cut at the upstream's 256."""
    from workerprobe.procs import gateway_env, serve

    with serve(["emulator"], env={"CF_API_TOKEN": "t"}) as emulator:
        env = gateway_env(
            emulator.url,
            api_key="k",
            token="t",
            default_max_tokens='{"*": 1024, "@cf/meta/llama-3.2-1b-instruct": 300}',
        )
        with serve(["gateway"], env=env) as server:
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0) as client:
                essay = [{"role": "user", "content": "Write a long essay about Rome"}]
                default = client.chat.completions.create(model=CHAT_MODEL, messages=essay)
                assert default.usage is not None and default.usage.completion_tokens == 1024
                assert default.choices[0].finish_reason == "length"
                per_model = client.chat.completions.create(model="@cf/meta/llama-3.2-1b-instruct", messages=essay)
                assert per_model.usage is not None and per_model.usage.completion_tokens == 300
                asked = client.chat.completions.create(model=CHAT_MODEL, messages=essay, max_tokens=20)
                assert asked.usage is not None and asked.usage.completion_tokens == 20
