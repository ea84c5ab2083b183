"""The spec as schemathesis loads it; the target's URL and key are given at call time."""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis

import workerprobe.suite.checks  # noqa: F401  (registers the OpenAI checks)
from workerprobe.suite.target import Target

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
# Generated cases per operation and phase: `make test` keeps it small, `make test-deep` raises it.
EXAMPLES = int(os.environ.get("WORKERPROBE_CONTRACT_EXAMPLES", "12"))


def load_schema() -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_path(SPEC)
    # Strings a UTF-8 client can send: JSON escapes of lone surrogates are not text.
    # Unknown query parameters are ignored, as OpenAI's API ignores them: not generated as negatives.
    schema.config.generation.update(max_examples=EXAMPLES, codec="utf-8", allow_extra_parameters=False)
    # A body over the size limit is rejected with 413 before it is read: a rejection too.
    negative = schema.config.checks.negative_data_rejection
    negative.expected_statuses = sorted({*negative.expected_statuses, "413"})
    return schema


def call_kwargs(target: Target) -> dict[str, object]:
    return {"base_url": target.root, "headers": {"Authorization": f"Bearer {target.api_key}"}, "timeout": 60}
