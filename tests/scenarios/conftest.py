"""SDK clients for the target under test, and the models the scenarios use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import openai
import pytest

from workerprobe.suite.target import Target

# A deployed Worker may serve other models: override with these variables.
CHAT_MODEL = os.environ.get("WORKERPROBE_CHAT_MODEL", "@cf/meta/llama-3.1-8b-instruct-fast")
EMBEDDING_MODEL = os.environ.get("WORKERPROBE_EMBEDDING_MODEL", "@cf/baai/bge-base-en-v1.5")


@pytest.fixture()
def client(target: Target) -> openai.OpenAI:
    return openai.OpenAI(base_url=target.v1, api_key=target.api_key, max_retries=0, timeout=60)


@pytest.fixture()
async def async_client(target: Target) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=target.v1, api_key=target.api_key, max_retries=0, timeout=60)
    yield client
    await client.close()
