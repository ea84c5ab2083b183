"""Path ids bound to objects that exist (suite/objects.py): the answers are given directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from workerprobe.suite import objects
from workerprobe.suite.contract import load_schema

SCHEMA = load_schema("coverage")


@dataclass
class Answer:
    status_code: int
    content: bytes


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    for kept in (objects._MADE, objects._REFUSED, objects._SEEN):
        kept.clear()
    yield


class Target:
    """Answers creates with new ids, in order, and records every case sent."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.sent, self.made = status, [], 0

    def __call__(self, case: Any) -> Answer:
        self.sent.append((case.method, case.path, dict(case.path_parameters or {}), case.body))
        self.made += 1
        prefix = "msg" if case.path.endswith("/messages") else "thread" if "threads" in case.path else "asst"
        return Answer(self.status, json.dumps({"id": f"{prefix}_{self.made}"}).encode())


def _case(path: str, method: str = "POST", **ids: str) -> Any:
    return SCHEMA[path][method].Case(path_parameters=ids, body={}, media_type="application/json")


def test_one_case_in_every_keeps_its_generated_id_the_others_reach_one_object() -> None:
    target = Target()
    cases = [_case("/v1/assistants/{assistant_id}", assistant_id=f"asst_gen{i}") for i in range(4)]
    bound = [objects.bind(case, target) for case in cases]
    assert bound == [True, False, True, False]
    assert [c.path_parameters["assistant_id"] for c in cases] == ["asst_1", "asst_gen1", "asst_1", "asst_gen3"]
    (create,) = target.sent  # made once, with the spec's smallest body and the suite's model
    assert create[:2] == ("POST", "/v1/assistants") and set(create[3]) == {"model"}


def test_a_message_brings_its_thread() -> None:
    target = Target()
    case = _case("/v1/threads/{thread_id}/messages/{message_id}", "GET", thread_id="t", message_id="m")
    assert objects.bind(case, target)
    assert [s[1] for s in target.sent] == ["/v1/threads", "/v1/threads/{thread_id}/messages"]
    assert target.sent[1][2] == {"thread_id": "thread_1"}
    assert case.path_parameters == {"thread_id": "thread_1", "message_id": "msg_2"}


def test_what_a_bound_delete_removed_is_made_again() -> None:
    target = Target()
    gone = _case("/v1/assistants/{assistant_id}", "DELETE", assistant_id="x")
    assert objects.bind(gone, target)
    objects.forget(gone, Answer(200, b'{"deleted": true}'))
    later = _case("/v1/assistants/{assistant_id}", assistant_id="y")
    assert objects.bind(later, target) and later.path_parameters["assistant_id"] == "asst_2"
    assert [s[1] for s in target.sent] == ["/v1/assistants", "/v1/assistants"]


def test_a_target_that_will_not_make_one_is_asked_once() -> None:
    target = Target(status=404)
    for i in range(6):
        assert not objects.bind(_case("/v1/assistants/{assistant_id}", assistant_id=f"g{i}"), target)
    assert len(target.sent) == 1


def test_operations_that_name_no_makeable_kind_are_left_alone() -> None:
    target = Target()
    case = _case("/v1/models/{model}", "GET", model="m")
    assert not objects.bind(case, target) and not target.sent and case.path_parameters == {"model": "m"}
