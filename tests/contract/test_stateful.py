"""Stateful phase: schemathesis walks the spec's links (create -> retrieve -> modify -> delete of
assistants, threads, messages and runs) and runs every check on each step."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.contract.conftest import EXAMPLES, load_schema
from workerprobe.suite.target import Target


def test_linked_workflows(target: Target) -> None:
    schema = load_schema()
    schema.config.update(base_url=target.root, headers={"Authorization": f"Bearer {target.api_key}"})
    machine = schema.as_state_machine()
    machine.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
