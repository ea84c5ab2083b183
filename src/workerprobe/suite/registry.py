"""The one registry of the suite's rules: each with its conformance level, where it applies, and
the client behaviour that justifies the level.

    MUST    an official `openai` SDK raises the wrong class, hangs, loses data or silently
            returns wrong data when the rule is broken (the rule says which);
    SHOULD  differs from the OpenAI API without breaking a client.

A rule is checked by one schemathesis check (`check`: a built-in one, or one of
`workerprobe.suite.checks`); a check may hold several rules and reports every rule a response
breaks. `applies(case, response)` says whether the rule means anything for that response, so
that a matrix cell reads "pass" only when the rule was checked on at least one response.

Failures carry their rule and level (`Finding`, a schemathesis `Failure`), so that reporters
never parse a level out of a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import orjson
from schemathesis.core.failures import Failure, Severity

from workerprobe.suite import operations

__all__ = ["BUILTIN", "RULES", "Finding", "Level", "Rule", "rule"]

Level = Literal["MUST", "SHOULD"]
Applies = Callable[[Any, Any], bool]


@dataclass(frozen=True)
class Rule:
    name: str
    level: Level
    check: str  # the schemathesis check that holds it
    why: str  # the client behaviour that justifies the level
    applies: Applies
    only: tuple[str, ...] | None = None  # the operations it can apply to (None: any)
    openai: str = ""  # what OpenAI's API does, and where that is documented


class Finding(Failure):
    """One broken rule in one response."""

    code: ClassVar[str] = "WP900"
    kind_title: ClassVar[str] = "OpenAI contract"

    __slots__ = ("rule", "level")

    def __init__(self, rule: Rule, message: str, operation: str | None = None) -> None:
        super().__init__(
            operation=operation,
            title=f"{rule.level} {rule.name}",
            message=message,
            severity=Severity.HIGH if rule.level == "MUST" else Severity.MEDIUM,
        )
        self.rule = rule.name
        self.level = rule.level

    @property
    def _unique_key(self) -> str:
        return f"{self.rule}:{self.message}"


RULES: dict[str, Rule] = {}


def rule(
    name: str,
    level: Level,
    check: str,
    why: str,
    applies: Applies,
    only: tuple[str, ...] | None = None,
    *,
    openai: str,
) -> Rule:
    """Register a rule (once: a second registration of a name is a programming error). `openai`: the
    behaviour of OpenAI's API the rule holds the target to, and where it is documented."""
    if name in RULES:
        raise ValueError(f"rule {name!r} registered twice")
    RULES[name] = Rule(name, level, check, why, applies, only, openai)
    return RULES[name]


# --- where rules apply ------------------------------------------------------------------------


def _meta_mode(case: Any) -> str | None:
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    return str(getattr(mode, "value", mode)) if mode is not None else None


def _scenario(case: Any) -> tuple[str | None, str | None]:
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    scenario = getattr(data, "scenario", None)
    return (str(getattr(scenario, "value", scenario)) if scenario else None, getattr(data, "parameter", None))


def _declared(case: Any, response: Any) -> dict[str, Any] | None:
    responses = case.operation.definition.raw.get("responses", {})
    status = str(response.status_code)
    found = responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
    return found if isinstance(found, dict) else None


def always(case: Any, response: Any) -> bool:
    return True


def positive(case: Any, response: Any) -> bool:
    return _meta_mode(case) == "positive"


# Schema-valid requests OpenAI itself refuses, for what no schema can state: a model's context
# window (400 `context_length_exceeded`), a thread's state (400 "Thread ... already has an active
# run"), a run's (400 "Cannot cancel run with status 'completed'."). (reason, status, the error's
# code, a pattern of its message.)
OPENAI_REFUSALS = (
    ("the model's context window, which OpenAI refuses the same", 400, "context_length_exceeded", None),
    ("a thread with an active run, which OpenAI refuses the same", 400, None, re.compile(r"already has an active run")),
    ("a run that has ended, which OpenAI refuses to cancel the same", 400, None, re.compile(r"Cannot cancel run")),
    ("tool outputs for a run not waiting for them, which OpenAI refuses the same", 400, None,
     re.compile(r"do not accept tool outputs")),
    ("a model of another task for the Assistants API, which OpenAI refuses the same", 400, None,
     re.compile(r"cannot be used with the Assistants API")),
)  # fmt: skip


def refused_as_openai_does(status: int, body: bytes) -> str | None:
    """Why a schema-valid request's refusal is OpenAI's own (None: it is not)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None
    for reason, wanted, code, pattern in OPENAI_REFUSALS:
        if status != wanted:
            continue
        if code is not None and error.get("code") == code:
            return reason
        if pattern is not None and pattern.search(str(error.get("message") or "")):
            return reason
    return None


def positive_within_window(case: Any, response: Any) -> bool:
    """Positive cases, except one OpenAI refuses the same for what no schema can state (the
    model's context window, a thread's active run: `OPENAI_REFUSALS`), and one naming a model
    the target was not said to serve (the fuzzer's "0" or "à": OpenAI refuses an unknown model
    too, with 404 `model_not_found`)."""
    if not positive(case, response):
        return False
    if 400 <= response.status_code < 500 and _unserved_model(case):
        return False
    return refused_as_openai_does(response.status_code, response.content) is None


def _unserved_model(case: Any) -> bool:
    from workerprobe.suite.target import chat_model, embedding_model  # the user's: WORKERPROBE_*_MODEL

    body = getattr(case, "body", None)
    model = body.get("model") if isinstance(body, dict) else None
    return model is not None and model not in (chat_model(), embedding_model())


def negative(case: Any, response: Any) -> bool:
    return _meta_mode(case) == "negative"


def has_body(case: Any, response: Any) -> bool:
    return response.status_code != 204 and bool(response.content)


def schema_declared(case: Any, response: Any) -> bool:
    declared = _declared(case, response)
    return bool(declared and declared.get("content"))


def headers_declared(case: Any, response: Any) -> bool:
    declared = _declared(case, response)
    return bool(declared and declared.get("headers"))


def is_error(case: Any, response: Any) -> bool:
    return int(response.status_code) >= 400


def is_success(case: Any, response: Any) -> bool:
    return 200 <= int(response.status_code) < 300


def is_stateful(case: Any, response: Any) -> bool:
    phase = getattr(getattr(getattr(case, "meta", None), "phase", None), "name", None)
    return str(getattr(phase, "value", phase)) == "stateful"


def media(response: Any) -> str:
    values = response.headers.get("content-type") or response.headers.get("Content-Type") or [""]
    value = values[0] if isinstance(values, list) else values
    return str(value).split(";")[0].strip().lower()


def chat_plain(case: Any, response: Any) -> bool:
    return (
        operations.of(case).stream == "chat" and is_success(case, response) and media(response) != "text/event-stream"
    )


def chat_stream(case: Any, response: Any) -> bool:
    return (
        operations.of(case).stream == "chat" and is_success(case, response) and media(response) == "text/event-stream"
    )


def chat_any(case: Any, response: Any) -> bool:
    return chat_plain(case, response) or chat_stream(case, response)


def chat_with_limit(case: Any, response: Any) -> bool:
    return chat_any(case, response) and bool(operations.of(case).caps_of(case.body))


def chat_with_stop(case: Any, response: Any) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    stop = body.get("stop")
    return chat_any(case, response) and bool(stop) and isinstance(stop, str | list)


def chat_with_n(case: Any, response: Any) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    return chat_plain(case, response) and isinstance(body.get("n"), int) and body.get("n") not in (None, 1)


def wants_usage(case: Any, response: Any) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    options = body.get("stream_options")
    return chat_stream(case, response) and isinstance(options, dict) and bool(options.get("include_usage"))


def run_stream(case: Any, response: Any) -> bool:
    return (
        operations.of(case).stream == "assistant"
        and is_success(case, response)
        and media(response) == "text/event-stream"
    )


def responses_plain(case: Any, response: Any) -> bool:
    return (
        operations.of(case).stream == "responses"
        and is_success(case, response)
        and media(response) != "text/event-stream"
    )


def responses_stream(case: Any, response: Any) -> bool:
    return (
        operations.of(case).stream == "responses"
        and is_success(case, response)
        and media(response) == "text/event-stream"
    )


def responses_any(case: Any, response: Any) -> bool:
    return responses_plain(case, response) or responses_stream(case, response)


def responses_with_limit(case: Any, response: Any) -> bool:
    return responses_any(case, response) and bool(operations.of(case).caps_of(case.body))


# Where rules can apply, from the spec's operation facts (suite/operations.py).
CHAT = operations.load().labels(stream="chat")
RUNS = operations.load().labels(stream="assistant")
RESPONSES = operations.load().labels(stream="responses")
STATEFUL_READS = operations.load().labels(linked_read=True)
LISTS = tuple(op.label for op in operations.load() if op.lists is not None)


def list_page(case: Any, response: Any) -> bool:
    return operations.of(case).lists is not None and is_success(case, response)


def quota_error(case: Any, response: Any) -> bool:
    return int(response.status_code) == 429


def missing_header_case(case: Any, response: Any) -> bool:
    scenario, parameter = _scenario(case)
    return scenario == "missing_parameter" and parameter is not None and parameter.lower() == "authorization"


def secured_success(case: Any, response: Any) -> bool:
    return is_success(case, response)


def stateful_read(case: Any, response: Any) -> bool:
    return is_stateful(case, response) and case.operation.method.upper() == "GET" and "{" in case.operation.path


# --- schemathesis's built-in checks, with their levels -----------------------------------------

BUILTIN: tuple[Rule, ...] = (
    rule(
        "not_a_server_error",
        "MUST",
        "not_a_server_error",
        "a 5xx makes the SDK raise InternalServerError (and retry it twice) where the request deserved a "
        "4xx class or an answer",
        always,
        openai="a request it cannot serve is a 4xx in the error envelope; a 5xx only for its own failures "
        "(API reference, Error codes)",
    ),
    rule(
        "response_schema_conformance",
        "MUST",
        "response_schema_conformance",
        "the SDK builds its objects without validation: a missing or mistyped field is silently None or wrong",
        schema_declared,
        openai="objects as the API reference defines them (openai/openai-openapi)",
    ),
    rule(
        "content_type_conformance",
        "MUST",
        "content_type_conformance",
        "the SDK parses by Content-Type: a JSON body sent as text/plain comes back as a str, not an object",
        has_body,
        openai="JSON answers are application/json, streams text/event-stream (API reference, Streaming)",
    ),
    rule(
        "positive_data_acceptance",
        "MUST",
        "positive_data_acceptance",
        "a request valid under the OpenAI API is refused: the SDK raises BadRequestError for a correct call",
        positive_within_window,
        openai="a request valid under the API reference is served (openai/openai-openapi)",
    ),
    rule(
        "ignored_auth",
        "MUST",
        "ignored_auth",
        "a request without a valid key is answered: the SDK never raises AuthenticationError for a wrong key",
        secured_success,
        openai="every call needs Authorization: Bearer; without a valid key 401 (API reference, Authentication)",
    ),
    rule(
        "ensure_resource_availability",
        "MUST",
        "ensure_resource_availability",
        "an object just created is not found: the SDK raises NotFoundError for an id it was given",
        stateful_read,
        STATEFUL_READS,
        openai="an object a create returned is retrievable by its id at once (API reference, Assistants)",
    ),
    rule(
        "use_after_free",
        "MUST",
        "use_after_free",
        "a deleted object is still served: the SDK silently returns data that no longer exists",
        stateful_read,
        STATEFUL_READS,
        openai="a deleted object answers 404 (API reference, Assistants: deleted: true)",
    ),
    rule(
        "status_code_conformance",
        "SHOULD",
        "status_code_conformance",
        "a status the API does not document; the SDK still raises an APIStatusError subclass",
        always,
        openai="statuses as documented: 200, and the 4xx/5xx of Error codes (API reference)",
    ),
    rule(
        "response_headers_conformance",
        "SHOULD",
        "response_headers_conformance",
        "a documented header is missing or malformed; the SDK reads none of them for correctness",
        headers_declared,
        openai="documented headers in their documented form (Retry-After on 429: rate-limit guide)",
    ),
    rule(
        "negative_data_rejection",
        "SHOULD",
        "negative_data_rejection",
        "an invalid request is accepted; the SDK sends only valid ones, other clients get no error",
        negative,
        openai="an invalid request is 400 invalid_request_error naming the param (API reference, Error codes)",
    ),
    rule(
        "missing_required_header",
        "SHOULD",
        "missing_required_header",
        "a request without Authorization is not a 401; the SDK always sends the header",
        missing_header_case,
        openai='no key: 401 invalid_request_error, "You didn\'t provide an API key" (API reference, Authentication)',
    ),
)
