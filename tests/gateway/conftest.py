"""A real gateway process in front of a real emulator process, and clients for them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from workerprobe.catalogue import load as load_catalogue
from workerprobe.procs import gateway_env, serve

KEY = "gateway-test-key"
UPSTREAM_TOKEN = "upstream-test-token"
CHAT_MODEL = load_catalogue().default("text-generation").name


@dataclass
class Gateway:
    url: str
    http: httpx.Client
    database: str

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=KEY, max_retries=0, **kwargs)  # type: ignore[arg-type]

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as emulator:
        database = str(tmp_path_factory.mktemp("gw") / "gateway.sqlite3")
        env = gateway_env(
            emulator.url,
            api_key=KEY,
            token=UPSTREAM_TOKEN,
            database=database,
            account="gateway-tests",
            keepalive_s="0.2",
        )
        with serve(["gateway"], env=env) as server:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
                yield Gateway(server.url, http, database)


@pytest.fixture()
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as client:
        yield client
