"""Deterministic, meaningful embeddings without a model.

Each word maps to a fixed pseudo-random direction (seeded by the word, the model's dimensions and
the pooling); a text is the normalised sum of its words' directions. Texts that share words are
therefore closer by cosine than unrelated texts (whose cosine is near 0), every vector has unit
length, and the same text always gives the same vector. `cls` pooling uses other directions, so
its vectors are not comparable with `mean` ones, as with the real models.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["embed", "rank"]

_WORD = re.compile(r"\w+")
Vector = npt.NDArray[np.float32]


@lru_cache(maxsize=65536)
def _direction(word: str, dimensions: int, pooling: str) -> Vector:
    seed = int.from_bytes(hashlib.blake2b(f"{pooling}\0{word}".encode(), digest_size=8).digest(), "big")
    v = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    v /= np.linalg.norm(v)
    return v


def _vector(text: str, dimensions: int, pooling: str) -> Vector:
    words = _WORD.findall(text.lower()) or [text]
    total = np.zeros(dimensions, dtype=np.float32)
    for word in words:
        total += _direction(word, dimensions, pooling)
    norm = float(np.linalg.norm(total))
    if norm == 0.0:
        return _direction("\0", dimensions, pooling)
    out: Vector = total / norm
    return out


def embed(texts: list[str], dimensions: int, pooling: str = "mean") -> list[list[float]]:
    """Unit-length vectors, one per text."""
    return [_vector(t, dimensions, pooling).tolist() for t in texts]


def rank(query: str, contexts: list[str], dimensions: int) -> list[dict[str, float | int]]:
    """bge-m3 ranking: contexts by cosine similarity to the query, best first."""
    q = _vector(query, dimensions, "mean")
    scores = [float(np.dot(q, _vector(c, dimensions, "mean"))) for c in contexts]
    order = sorted(range(len(contexts)), key=lambda i: -scores[i])
    return [{"id": i, "score": scores[i]} for i in order]
