"""schemathesis's `response_schema_conformance`, bounded in what it builds from one answer.

The built-in check turns every schema error of an answer into a failure object carrying the schema
text, and compares each new one with all before it. A list of 10,000 entries that are not the
listed objects (a target that answers every path with its model list, say) is then tens of
thousands of failures: about 250 MB and a minute of work for one answer. Here every array of the
answer is validated up to its first `MAX_ITEMS` entries (OpenAI's own lists hold at most 100 a
page): the same kinds of error are found, once per entry shown, whatever the length. Registered
under the built-in's name, so the configuration and the levels of `workerprobe.suite.registry`
apply unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import orjson
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.transport import Response

__all__ = ["MAX_ITEMS", "response_schema_conformance", "trimmed"]

MAX_ITEMS = 100

load_all_checks()
_BUILT_IN: Callable[..., bool | None] = cast(Any, CHECKS.get_one("response_schema_conformance"))


def _cut(value: Any) -> tuple[Any, bool]:
    """`value` with every array past MAX_ITEMS cut to its first MAX_ITEMS, and whether any was."""
    if isinstance(value, list):
        kept = [_cut(item) for item in value[:MAX_ITEMS]]
        return [item for item, _ in kept], len(value) > MAX_ITEMS or any(cut for _, cut in kept)
    if isinstance(value, dict):
        pairs = {key: _cut(item) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, any(cut for _, cut in pairs.values())
    return value, False


def trimmed(response: Response) -> Response:
    """The answer with its arrays cut to MAX_ITEMS entries (the answer itself when none is longer,
    or when it is not JSON)."""
    if response.content.count(b",") <= MAX_ITEMS:  # too few separators for an array past the cap
        return response
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response
    data, cut = _cut(data)
    if not cut:
        return response
    return Response(
        status_code=response.status_code,
        headers=response.headers,
        content=orjson.dumps(data),
        request=response.request,
        elapsed=response.elapsed,
        verify=response.verify,
        message=response.message,
        http_version=response.http_version,
        encoding=response.encoding,
        _override=response._override,
    )


def response_schema_conformance(ctx: Any, response: Response, case: Any) -> bool | None:
    return _BUILT_IN(ctx, trimmed(response), case)


if _BUILT_IN is not response_schema_conformance:  # once, whatever imports this module again
    CHECKS.unregister("response_schema_conformance")
    schemathesis.check(response_schema_conformance)
