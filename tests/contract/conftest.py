"""The spec as schemathesis loads it; the target's URL and key are given at call time."""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis

import workerprobe.suite.checks  # noqa: F401  (registers the OpenAI checks)
from workerprobe.suite.target import Target

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.yaml"
CONFIG = ROOT / "schemathesis.toml"
# Generated cases per operation and phase: `make test` keeps it small, `make test-deep` raises it.
EXAMPLES = int(os.environ.get("WORKERPROBE_CONTRACT_EXAMPLES", "12"))


def load_schema() -> schemathesis.BaseSchema:
    """The spec, with the project's schemathesis.toml (generation and check settings)."""
    config = schemathesis.config.SchemathesisConfig.from_path(CONFIG)
    schema = schemathesis.openapi.from_path(SPEC, config=config)
    schema.config.generation.update(max_examples=EXAMPLES)
    return schema


CASES = {"count": 0}


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: object) -> None:
    """Counts the generated requests sent (reported at the end of the run)."""
    CASES["count"] += 1


def call_kwargs(target: Target) -> dict[str, object]:
    return {"base_url": target.root, "headers": {"Authorization": f"Bearer {target.api_key}"}, "timeout": 60}
