"""Pre-flight against real servers on loopback: one clear line for each way a run cannot start."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from workerprobe.procs import free_port, serve
from workerprobe.suite.preflight import check, env_warnings
from workerprobe.suite.target import Target


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[str, str]]:
    token = secrets.token_hex(8)
    with serve(["emulator"], env={"CF_API_TOKEN": token}) as server:
        yield server.url, token


def _target(url: str, key: str) -> Target:
    return Target(root=url.removesuffix("/v1"), api_key=key, embedded=False)


def test_a_good_key_on_a_real_base_url_passes(emulator: tuple[str, str]) -> None:
    url, token = emulator
    result = check(_target(f"{url}/client/v4/accounts/a/ai/v1", token))
    assert result.ok and "accepts the key" in result.line


def test_a_wrong_key_stops_the_run(emulator: tuple[str, str]) -> None:
    url, _ = emulator
    result = check(_target(f"{url}/client/v4/accounts/a/ai/v1", "wrong"))
    assert not result.ok and "API_KEY was rejected" in result.line


def test_a_base_url_without_the_api_stops_the_run(emulator: tuple[str, str]) -> None:
    url, token = emulator
    result = check(_target(f"{url}/v1", token))
    assert not result.ok and "ending in /v1" in result.line


def test_a_dead_host_stops_the_run() -> None:
    result = check(_target(f"http://127.0.0.1:{free_port()}/v1", "k"))
    assert not result.ok and "does not answer" in result.line


def test_typos_in_env_are_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("CLOUDFLARE_WORKER_ULR=https://x.workers.dev/v1\nAPI_KEY=k\nWORKERPROBE_GATEWAY_CACHE_TTL_S=1\n")
    warnings = env_warnings(env, {})
    assert any("CLOUDFLARE_WORKER_ULR" in w and "did you mean CLOUDFLARE_WORKER_URL" in w for w in warnings)
    assert any("API_KEY is set but CLOUDFLARE_WORKER_URL is not" in w for w in warnings)
    assert not any("CACHE_TTL" in w for w in warnings)  # a real gateway setting
