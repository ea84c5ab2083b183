"""The schema check stays bounded on a huge list and still finds what is wrong with its entries."""

from __future__ import annotations

import orjson
import pytest
import requests
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response

from workerprobe.suite.contract import load_schema
from workerprobe.suite.schema_check import MAX_ITEMS, trimmed


def _answer(data: object) -> Response:
    request = requests.Request("GET", "http://127.0.0.1:1/v1/assistants").prepare()
    return Response(200, {"content-type": ["application/json"]}, orjson.dumps(data), request, 0.01, True)


def _failures(response: Response) -> list[str]:
    operation = load_schema()["/v1/assistants"]["GET"]
    try:
        operation.validate_response(response)
    except FailureGroup as group:
        return [str(getattr(f, "message", f)) for f in group.exceptions]
    except AssertionError as one:
        return [str(one)]
    return []


def _models(n: int) -> dict[str, object]:
    """A model list where a list of assistants is expected: not one entry is an assistant."""
    data = [{"id": f"model-{i}", "object": "model", "created": 1, "owned_by": "x"} for i in range(n)]
    return {"object": "list", "data": data, "first_id": "a", "last_id": "b", "has_more": False}


def test_a_list_past_the_cap_is_validated_on_its_first_entries() -> None:
    cut = trimmed(_answer(_models(10_000)))
    assert len(orjson.loads(cut.content)["data"]) == MAX_ITEMS
    kept = _answer(_models(MAX_ITEMS))
    assert trimmed(kept) is kept  # nothing to cut: the answer itself


def test_the_same_errors_are_found_and_their_number_is_bounded() -> None:
    short = _failures(trimmed(_answer(_models(10_000))))
    assert short, "entries that are not assistants must fail the schema"
    assert len(short) <= 50 * MAX_ITEMS
    assert set(short) <= set(_failures(_answer(_models(MAX_ITEMS))))


@pytest.mark.parametrize("content", [b"{not json", b'{"data": [1, 2, 3]}'])
def test_what_is_not_a_long_json_list_is_left_alone(content: bytes) -> None:
    request = requests.Request("GET", "http://127.0.0.1:1/v1/assistants").prepare()
    answer = Response(200, {"content-type": ["application/json"]}, content, request, 0.01, True)
    assert trimmed(answer) is answer
