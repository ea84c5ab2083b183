"""Embeddings: shapes per model, unit length, determinism, similarity, limits, bge-m3 ranking."""

from __future__ import annotations

import math

import pytest

from tests.emulator.conftest import Emulator, error_of


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("model", "dims"),
    [
        ("@cf/baai/bge-small-en-v1.5", 384),
        ("@cf/baai/bge-base-en-v1.5", 768),
        ("@cf/baai/bge-large-en-v1.5", 1024),
        ("@cf/baai/bge-m3", 1024),
    ],
)
def test_shapes_and_unit_length(emulator: Emulator, model: str, dims: int) -> None:
    result = emulator.run(model, {"text": ["first text", "second text", "third"]}).json()["result"]
    assert result["shape"] == [3, dims] and result["pooling"] == "mean"
    assert len(result["data"]) == 3
    for vector in result["data"]:
        assert len(vector) == dims
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)


def test_single_string_and_determinism(emulator: Emulator) -> None:
    a = emulator.run("@cf/baai/bge-base-en-v1.5", {"text": "the same text"}).json()["result"]
    b = emulator.run("@cf/baai/bge-base-en-v1.5", {"text": ["the same text"]}).json()["result"]
    assert a["shape"] == [1, 768] and a["data"] == b["data"]


def test_texts_that_share_words_are_closer(emulator: Emulator) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a warm mat", "quarterly revenue grew by four percent"]
    a, b, c = emulator.run("@cf/baai/bge-base-en-v1.5", {"text": texts}).json()["result"]["data"]
    assert _cos(a, b) > 0.4
    assert abs(_cos(a, c)) < 0.2
    assert _cos(a, b) > _cos(a, c) + 0.3


def test_cls_pooling_differs_from_mean(emulator: Emulator) -> None:
    mean = emulator.run("@cf/baai/bge-base-en-v1.5", {"text": "pooled"}).json()["result"]
    cls = emulator.run("@cf/baai/bge-base-en-v1.5", {"text": "pooled", "pooling": "cls"}).json()["result"]
    assert cls["pooling"] == "cls" and cls["data"] != mean["data"]


def test_batch_and_token_limits(emulator: Emulator) -> None:
    status, code, message = error_of(emulator.run("@cf/baai/bge-base-en-v1.5", {"text": ["x"] * 101}))
    assert (status, code) == (400, 5006) and "more than maxItems 100" in message
    assert emulator.run("@cf/baai/bge-base-en-v1.5", {"text": ["x"] * 100}).status_code == 200
    status, code, message = error_of(emulator.run("@cf/baai/bge-base-en-v1.5", {"text": "word " * 600}))
    assert (status, code) == (400, 5006) and "more than max_input_tokens 512" in message
    assert error_of(emulator.run("@cf/baai/bge-base-en-v1.5", {"text": 3}))[:2] == (400, 5006)
    assert error_of(emulator.run("@cf/baai/bge-base-en-v1.5", {"prompt": "x"}))[:2] == (400, 5006)


def test_bge_m3_query_ranking_and_truncation(emulator: Emulator) -> None:
    body = {"query": "cats on mats", "contexts": [{"text": "stock markets fell"}, {"text": "cats like mats"}]}
    ranked = emulator.run("@cf/baai/bge-m3", body).json()["result"]["response"]
    assert [r["id"] for r in ranked] == [1, 0]
    assert ranked[0]["score"] > ranked[1]["score"]
    contexts = emulator.run("@cf/baai/bge-m3", {"contexts": [{"text": "a"}, {"text": "b"}]}).json()["result"]
    assert contexts["shape"] == [2, 1024] and len(contexts["response"]) == 2
    long_text = "word " * 70000
    assert emulator.run("@cf/baai/bge-m3", {"text": long_text}).status_code == 400
    assert emulator.run("@cf/baai/bge-m3", {"text": long_text, "truncate_inputs": True}).status_code == 200


def test_embeddings_are_metered(emulator: Emulator) -> None:
    emulator.run("@cf/baai/bge-base-en-v1.5", {"text": ["one two three", "four"]}, account="emb-meter")
    usage = emulator.usage()["accounts"]["emb-meter"]["models"]["@cf/baai/bge-base-en-v1.5"]
    assert usage["input_tokens"] == 4
    assert usage["neurons"] == pytest.approx(4 * 6058 / 1e6)
