"""Model listing, /models/search, and embeddings through the SDK."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from tests.gateway.conftest import Gateway


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = client.models.list().data
    ids = {m.id for m in models}
    assert "@cf/meta/llama-3.1-8b-instruct-fast" in ids and "@cf/baai/bge-m3" in ids
    for m in models:
        assert m.object == "model" and m.created > 0 and m.owned_by
    llama = client.models.retrieve("@cf/meta/llama-3.1-8b-instruct-fast")
    assert llama.id == "@cf/meta/llama-3.1-8b-instruct-fast"
    assert llama.model_extra and llama.model_extra["task"] == "text-generation"
    with_suffix = client.models.retrieve("@cf/meta/llama-3.1-8b-instruct-fast#text-generation")
    assert with_suffix.id == llama.id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("@cf/none/none")


def test_models_search_html_is_escaped_and_needs_no_auth(gateway: Gateway) -> None:
    page = httpx.get(f"{gateway.url}/models/search")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "@cf/baai/bge-base-en-v1.5" in page.text and "<script" not in page.text
    data = httpx.get(f"{gateway.url}/models/search", params={"query": "json"}).json()["data"]  # as the Worker's
    assert any(item["id"] == "@cf/baai/bge-m3" for item in data)


def test_chat_with_task_suffix_and_retired_model(gateway: Gateway, client: openai.OpenAI) -> None:
    suffix = client.chat.completions.create(
        model="@cf/meta/llama-3.1-8b-instruct-fast#text-generation",
        messages=[{"role": "user", "content": "What is 1 + 1?"}],
    )
    assert suffix.choices[0].message.content == "1 + 1 = 2."
    raw = gateway.http.post(
        "/v1/chat/completions",
        json={"model": "@cf/meta/llama-3-8b-instruct", "messages": [{"role": "user", "content": "What is 1 + 1?"}]},
    )
    assert raw.status_code == 200
    assert raw.headers["x-workerprobe-model-replaced"] == (
        "@cf/meta/llama-3-8b-instruct -> @cf/meta/llama-3.1-8b-instruct-fast"
    )
    assert raw.json()["model"] == "@cf/meta/llama-3-8b-instruct"


def test_embeddings_float_and_base64_agree(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="@cf/baai/bge-base-en-v1.5", input=["a cat", "a dog"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 768 for d in floats.data)
    assert floats.usage.prompt_tokens == 4
    raw = client.embeddings.with_raw_response.create(
        model="@cf/baai/bge-base-en-v1.5", input=["a cat", "a dog"], encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<768f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)
    # The SDK decodes base64 itself when it asked for it.
    default = client.embeddings.create(model="@cf/baai/bge-base-en-v1.5", input="a cat")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_openai_embedding_names_are_mapped(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert result.model == "text-embedding-3-small" and len(result.data[0].embedding) == 768


def test_dimensions_honoured_or_clear_400(client: openai.OpenAI) -> None:
    ok = client.embeddings.create(model="@cf/baai/bge-small-en-v1.5", input="x", dimensions=384)
    assert len(ok.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="@cf/baai/bge-small-en-v1.5", input="x", dimensions=256)
    assert caught.value.body["param"] == "dimensions"  # type: ignore[index]


def test_embedding_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="@cf/baai/bge-base-en-v1.5", input=["x"] * 2049)  # OpenAI's limit
    with pytest.raises(openai.NotFoundError):  # a model this endpoint cannot serve: 404, as chat's
        client.embeddings.create(model="@cf/meta/llama-3.1-8b-instruct-fast", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="@cf/baai/bge-base-en-v1.5", input="")


def test_batches_over_the_upstream_limit_are_split_and_merged_in_order(client: openai.OpenAI) -> None:
    texts = [f"text number {i} about topic {i % 7}" for i in range(250)]
    merged = client.embeddings.create(model="@cf/baai/bge-small-en-v1.5", input=texts)
    assert [d.index for d in merged.data] == list(range(250))
    for i in (0, 99, 100, 199, 249):  # each one is the vector of its own text
        alone = client.embeddings.create(model="@cf/baai/bge-small-en-v1.5", input=texts[i])
        assert merged.data[i].embedding == pytest.approx(alone.data[0].embedding)
