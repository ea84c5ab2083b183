"""Embeddings through the SDK: float and base64 agree."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from workerprobe.suite.cases.scenarios.conftest import EMBEDDING_MODEL

# Level of every test here unless it says otherwise: MUST (an official client breaks).
pytestmark = [pytest.mark.must, pytest.mark.family("embeddings")]


def test_float_and_base64_agree(client: openai.OpenAI) -> None:
    texts = ["The food was delicious.", "The service was slow."]
    floats = client.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    size = len(floats.data[0].embedding)
    assert size > 0 and all(len(d.embedding) == size for d in floats.data)
    raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input=texts, encoding_format="base64")
    encoded = raw.http_response.json()["data"][1]["embedding"]
    decoded = struct.unpack(f"<{size}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats.data[1].embedding, rel=1e-5, abs=1e-7)
