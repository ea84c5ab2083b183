"""The spec as schemathesis loads it; the target's URL and key are given at call time."""

from __future__ import annotations

import os
from pathlib import Path

import allure
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup

import workerprobe.suite.checks  # noqa: F401  (registers the OpenAI checks)
from workerprobe.suite.budget import GENERATION_CAP, Budget, Exhausted
from workerprobe.suite.conformance import Recorder
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
RECORDER = Recorder()


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: object) -> None:
    """Counts the generated requests sent (reported at the end of the run)."""
    CASES["count"] += 1


@schemathesis.hook
def after_validate(
    context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response, results: list
) -> None:
    """Feeds every check's outcome to the conformance matrix."""
    RECORDER.record(f"{case.operation.method.upper()} {case.operation.path}", response.status_code, results)


def operations() -> list[str]:
    ops = (result.ok() for result in load_schema().get_all_operations())
    return [f"{op.method.upper()} {op.path}" for op in ops]


# Operations that make the target call a model (and so cost neurons on a deployed Worker).
GENERATING = {
    "/v1/chat/completions": "max_tokens",
    "/v1/threads/{thread_id}/runs": "max_completion_tokens",
    "/v1/threads/runs": "max_completion_tokens",
    "/v1/embeddings": None,
}
DEFAULT_MODEL = "@cf/meta/llama-3.1-8b-instruct-fast"


def _spend(case: schemathesis.Case, budget: Budget) -> float:
    """Against a deployed target: cap generation at a few tokens and hold its worst case."""
    path = case.operation.path
    if case.operation.method.upper() != "POST" or path not in GENERATING or not isinstance(case.body, dict):
        return 0.0
    field = GENERATING[path]
    if field is not None:
        # Absent or too large: capped. Invalid values stay, so negative cases stay negative.
        given = case.body.get(field)
        if given is None and field not in case.body:
            case.body[field] = GENERATION_CAP
        elif isinstance(given, int) and not isinstance(given, bool) and given > GENERATION_CAP:
            case.body[field] = GENERATION_CAP
    try:
        return budget.reserve(case.body, DEFAULT_MODEL)
    except Exhausted as exc:
        pytest.skip(str(exc))


def call_and_validate(case: schemathesis.Case, target: Target, budget: Budget) -> None:
    """Send a case to the target and run every check; a failure is attached to Allure with the
    request (as a curl command, `Authorization` filtered) and what the checks found."""
    headers = {"Authorization": f"Bearer {target.api_key}"}
    reserved = 0.0 if target.emulated else _spend(case, budget)
    try:
        transport = {"base_url": target.root, "headers": headers, "timeout": 60}
        response = case.call(**transport)
        if reserved:
            body = case.body if isinstance(case.body, dict) else {}
            payload = response.json() if "json" in str(response.headers.get("content-type")) else None
            usage = payload.get("usage") if isinstance(payload, dict) else None
            budget.settle(reserved, body.get("model", DEFAULT_MODEL), response.status_code, usage)
        case.validate_response(response, headers=headers, transport_kwargs=transport)
    except FailureGroup as group:
        allure.attach(case.as_curl_command(headers=headers, base_url=target.root), "curl", allure.attachment_type.TEXT)
        allure.attach(str(group), "failures", allure.attachment_type.TEXT)
        raise
