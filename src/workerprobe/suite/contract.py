"""The contract tests' engine: the spec as schemathesis loads it (one schema per phase), one call
of a generated case against the target, and the record of what it showed.

A failing check never ends an operation's run: every case is sent, its rule outcomes go to the
process's `Findings` (the `after_validate` hook below), and the test of an operation and phase
fails once at its end, naming each group of findings (`verdict_of`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import requests
import schemathesis
from schemathesis.core.failures import FailureGroup

from workerprobe.catalogue import load as _catalogue
from workerprobe.suite import bounds, objects
from workerprobe.suite import checks as _checks  # noqa: F401  (registers the OpenAI checks)
from workerprobe.suite import responses_checks as _responses_checks  # noqa: F401  (and the Responses API's)
from workerprobe.suite import schema_check as _schema_check  # noqa: F401  (the bounded schema check)
from workerprobe.suite.blame import OF_A_SERVER_ERROR, body_kind, culprit, echoed
from workerprobe.suite.blame import json_body as _json
from workerprobe.suite.budget import GENERATION_CAP, Budget, Exhausted, Hold
from workerprobe.suite.findings import BUDGET, RUN_OVER, Findings, Group, curl, explanation
from workerprobe.suite.ledger import Ledger
from workerprobe.suite.objects import tag
from workerprobe.suite.operations import SPEC
from workerprobe.suite.operations import load as operations_facts
from workerprobe.suite.operations import of as operation_of
from workerprobe.suite.registry import RULES, Finding, media, positive
from workerprobe.suite.rules import ANSWER_BOUNDED
from workerprobe.suite.spend import stream_usage
from workerprobe.suite.target import Target, chat_model, embedding_model

__all__ = [
    "EXAMPLES", "FINDINGS", "PHASES", "SPEC", "call", "created", "hold_for",
    "load_schema", "operation_of", "operations", "phase_of", "settle", "tag",
]  # fmt: skip

# The spec and schemathesis's settings ship in the package (a checkout's files point here).
CONFIG = SPEC.parent / "schemathesis.toml"
# Generated cases per operation and phase: `make test` keeps it small, `make test-deep` raises it.
EXAMPLES = int(os.environ.get("WORKERPROBE_CONTRACT_EXAMPLES", "12"))
PHASES = ("examples", "coverage", "fuzzing")

DEFAULTS = (_catalogue().default("text-generation").name, _catalogue().default("text-embeddings").name)
# What this test process saw (written to a part file at the end of the session).
FINDINGS = Findings()


def load_schema(phase: str | None = None) -> schemathesis.BaseSchema:
    """The spec with the project's schemathesis.toml; `phase`: only that phase runs."""
    config = schemathesis.config.SchemathesisConfig.from_path(CONFIG)
    schema = schemathesis.openapi.from_path(SPEC, config=config)
    schema.config.generation.update(max_examples=EXAMPLES)
    if phase is not None:
        schema.config.phases.update(phases=[phase])
    return schema


def operations() -> list[str]:
    """The spec's operations, as `METHOD /path` labels."""
    return list(operations_facts().by_label)


def chosen_model(case: Any) -> None:
    """The spec's example models become the user's (WORKERPROBE_CHAT_MODEL, ..._EMBEDDING_MODEL):
    a Worker that serves only its own list is fuzzed with a model it serves."""
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        chosen = {DEFAULTS[0]: chat_model(), DEFAULTS[1]: embedding_model()}
        case.body["model"] = chosen.get(case.body["model"], case.body["model"])


OWN: dict[str, str] = {}  # case id -> phase, for cases the suite wrote itself (test_nulls)


def phase_of(case: Any) -> str:
    if case.id in OWN:
        return OWN[case.id]
    phase = getattr(getattr(getattr(case, "meta", None), "phase", None), "name", None)
    return str(getattr(phase, "value", phase) or "examples")


def cap_generation(case: Any) -> None:
    """Cap generation at a few tokens: a case that names none of the operation's caps gets the
    first, one too large is lowered. Invalid values stay, so negative cases stay negative, and a
    case that names one limit never gets another added."""
    facts = operation_of(case).generates
    if facts is None or not isinstance(case.body, dict):
        return
    present = [f for f in facts.caps if f in case.body]
    if not present and facts.cap is not None:
        case.body[facts.cap] = GENERATION_CAP
    for name in present:
        given = case.body[name]
        if isinstance(given, int) and not isinstance(given, bool) and given > GENERATION_CAP:
            case.body[name] = GENERATION_CAP


def tokens_of(case: Any, response: Any) -> tuple[int, int] | None:
    """The (input, output) tokens an answer reports, where the operation says it reports them."""
    usage = operation_of(case).usage
    if usage is None:
        return None
    if media(response) == "text/event-stream":
        return stream_usage(response.content, (usage.input, usage.output))
    return usage.tokens(_json(response))


def hold_for(case: Any, budget: Budget) -> Hold | None:
    """Cap a generating case and hold its worst case (None: it generates nothing); raises
    Exhausted when the budget cannot."""
    facts = operation_of(case).generates
    if facts is None:
        return None
    cap_generation(case)
    body = case.body if isinstance(case.body, dict) else {}
    return budget.reserve(body, chat_model(), facts, member=case.operation.label)


def settle(case: Any, budget: Budget, hold: Hold, response: Any) -> None:
    model = case.body.get("model") if isinstance(case.body, dict) else None
    budget.settle(hold, str(model or chat_model()), response.status_code, tokens_of(case, response))


def call(case: Any, target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str) -> None:
    """Send one case, its path ids bound to objects that exist (objects.py); failures recorded."""
    send = partial(_send, target=target, budget=budget, ledger=ledger, run_id=run_id)
    objects.bind(case, send)
    objects.forget(case, send(case))


def _send(case: Any, target: Target, budget: Budget | None, ledger: Ledger | None, run_id: str) -> Any:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    hold = None
    label = case.operation.label
    if STOP.reason is not None:
        FINDINGS.not_made(label, STOP.reason)
        return None
    try:
        deadline = bounds.request_deadline()
    except bounds.RunOver:
        FINDINGS.not_made(label, RUN_OVER)
        return None
    chosen_model(case)
    if budget is not None:
        try:
            hold = hold_for(case, budget)
        except Exhausted:
            FINDINGS.not_made(label, BUDGET)
            return None
    if ledger is not None:
        tag(case, run_id)
    learn_missing_route(target)
    transport = {"base_url": target.root, "headers": headers, "timeout": deadline, "session": session()}
    try:
        response = case.call(**transport)
    except (bounds.UnboundedRequests, requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
        if hold is not None and budget is not None:
            budget.charge(hold, hold.neurons, worst_case=hold.neurons)  # it may have generated
        if not unbounded(case, exc, target, deadline):
            raise
        return None
    except Exception:
        if hold is not None and budget is not None:
            budget.release(hold)
        raise
    STOP.within(response)
    if hold is not None and budget is not None:
        settle(case, budget, hold, response)
    created(case, ledger, response)
    try:
        case.validate_response(response, headers=headers, transport_kwargs=transport)
    except FailureGroup:
        pass  # every failure is in FINDINGS already (after_validate)
    except (bounds.UnboundedRequests, bounds.RunOver, requests.exceptions.RequestException):
        pass  # a check's own request (the same without a key, say) past its bounds: what was seen stands
    return response


STOP_AFTER = 3  # answers past their bounds in a row before the rest are not sent


@dataclass
class _Stop:
    """This process stops sending when the target answered past its bounds too often in a row."""

    in_a_row: int = 0
    reason: str | None = None

    def past(self, problem: str) -> None:
        self.in_a_row += 1
        if self.in_a_row >= STOP_AFTER:
            self.reason = f"the target answered {STOP_AFTER} requests in a row past the suite's bounds ({problem})"

    def within(self, response: Any) -> None:
        if not getattr(response, "stream_cut_short", False):
            self.in_a_row = 0


STOP = _Stop()


def unbounded(case: Any, exc: Exception, target: Target, deadline: float) -> bool:
    """Record an answer past its bounds as a finding of the operation (False: `exc` is some other
    failure, a refused connection, not this)."""
    if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" not in str(exc).lower():
        return False
    problem = (
        str(exc) if isinstance(exc, bounds.UnboundedRequests) else f"the answer was not complete within {deadline:g} s"
    )
    label = case.operation.label
    FINDINGS.sent(label, 0, valid=False, evidence=False)
    repro = case.as_curl_command(headers={"Authorization": "-"}, base_url=target.root)
    repro = repro.replace("'Authorization: [Filtered]'", '"Authorization: Bearer $API_KEY"')
    FINDINGS.failed(label, phase_of(case), ANSWER_BOUNDED, Finding(ANSWER_BOUNDED, problem, operation=label), repro, 0)
    STOP.past(problem)
    return True


_SESSIONS: list[requests.Session] = []


def session() -> requests.Session:
    """This process's bounded session (suite/bounds.py), made once."""
    if not _SESSIONS:
        _SESSIONS.append(bounds.session())
    return _SESSIONS[0]


def created(case: Any, ledger: Ledger | None, response: Any) -> None:
    """What a 2xx answer to a create made goes to the ledger, and is known as this case's making."""
    if not 200 <= response.status_code < 300:
        return
    facts, body = operation_of(case), _json(response)
    if ledger is not None:
        ledger.created(facts, body)
    writes = facts.creates is not None or (case.method.upper() == "POST" and case.path.endswith("_id}"))
    if writes and isinstance(body, dict) and body.get("object") != "list":  # a create or a modify
        object_id = body.get(facts.creates.id if facts.creates is not None else "id")
        if isinstance(object_id, str) and object_id:
            FINDINGS.made_by(object_id, case.operation.label, _repro(response))  # the last writer is blamed
            FINDINGS.wrote(object_id, case.body)


def _repro(response: Any) -> str:
    request = response.request
    return curl(str(request.method), str(request.url), dict(request.headers), request.body)


_NO_ROUTE = "/v1/workerprobe-no-such-route"
# How this target answers a path it has no route for: (status, body signature), learnt once per
# process; None when it could not be learnt.
_NO_ROUTE_ANSWER: dict[str, tuple[int, str] | None] = {}


def _signature(text: str, path: str) -> str:
    return re.sub(r"\d+", "N", text.replace(path, "<path>"))


def learn_missing_route(target: Target) -> None:
    """Ask once for a path no server has: its answer (a 404, or a 400 "No route for that URI" from
    Cloudflare's API) is how this target says "no such route"."""
    if "answer" in _NO_ROUTE_ANSWER:
        return
    try:
        url = httpx.URL(f"{target.root}{_NO_ROUTE}")
        with bounds.client(15) as client:
            answer = client.post(url, headers={"Authorization": f"Bearer {target.api_key}"}, json={})
        known = (answer.status_code, _signature(answer.text, url.path))
        _NO_ROUTE_ANSWER["answer"] = known if 400 <= answer.status_code < 500 else None
        if _NO_ROUTE_ANSWER["answer"] is not None:
            FINDINGS.no_route_said = explanation(answer) or f"HTTP {answer.status_code}"
    except (httpx.HTTPError, bounds.RunOver):
        _NO_ROUTE_ANSWER["answer"] = None


def no_route(response: Any) -> bool:
    """Whether the answer is this target's answer for a path it has no route for."""
    known = _NO_ROUTE_ANSWER.get("answer")
    if known is None or response.status_code != known[0]:
        return False
    return _signature(response.text, httpx.URL(str(response.request.url)).path) == known[1]


def _evidence(case: Any, response: Any) -> bool:
    """Whether the answer says anything about the operation being implemented: a 404 does only when
    it reads like the target's answer for a path it has no route for (otherwise it may say that an
    object, a model or a referenced assistant does not exist)."""
    if response.status_code != 404:
        return True
    return no_route(response)


@schemathesis.hook
def after_validate(context: Any, case: Any, response: Any, results: list[Any]) -> None:
    """Books every response and every rule outcome under the operation the case hit (a probe with
    a method the spec does not have, `TRACE /models/search`, under that method, not the spec's)."""
    sent = str(getattr(response.request, "method", case.operation.method)).upper()
    operation = case.operation.label if sent == case.operation.method.upper() else f"{sent} {case.operation.path}"
    phase, status = phase_of(case), int(response.status_code)
    unrouted = no_route(response)
    FINDINGS.sent(
        operation, status, valid=positive(case, response), evidence=_evidence(case, response), no_route=unrouted
    )
    if getattr(response, "stream_cut_short", False):  # read until the request's deadline: it never ended
        problem = "the event stream did not end within the request's deadline"
        cut = Finding(ANSWER_BOUNDED, problem, operation)
        FINDINGS.failed(operation, phase, ANSWER_BOUNDED, cut, _repro(response), status, source=case.operation.label)
        STOP.past(problem)
    # Every answer that reached validation came within the bounds of the suite's transport.
    ran = {result.name for result in results} | {ANSWER_BOUNDED.check}
    broken: set[str] = set()
    said = (explanation(response) or body_kind(response)) if status >= 400 else None
    server_error = status >= 500 and any(r.name == "not_a_server_error" and r.failure for r in results)
    failed = {getattr(r.failure, "rule", None) or r.name for r in results if r.failure is not None}
    no_envelope = status >= 400 and "openai_error_envelope" in failed  # a text page: its type says the same
    for result in results:
        failure = result.failure
        if failure is None:
            continue
        rule = RULES.get(failure.rule) if isinstance(failure, Finding) else RULES.get(result.name)
        if rule is None or (rule.check == "response_schema_conformance" and status >= 400):
            continue  # an error answer's shape is the envelope rules' (one finding for one fact)
        if rule.name == "positive_data_acceptance" and not rule.applies(case, response):
            continue  # a refusal OpenAI makes the same (OPENAI_REFUSALS), or of a model not served
        folded = server_error and rule.name in OF_A_SERVER_ERROR
        if folded or (no_envelope and rule.name == "content_type_conformance"):
            if rule.name not in broken:
                FINDINGS.counted(operation, rule)
            broken.add(rule.name)
            continue  # one fact, one finding: the 500 (what its page lacks is said in it), the envelope missing
        FINDINGS.failed(
            operation,
            phase,
            rule,
            failure,
            _repro(response),
            status,
            source=case.operation.label,
            said=None if isinstance(failure, Finding) else said,
            cell=rule.name not in broken,
            culprit=(cul := culprit(response, failure) if rule.check == "response_schema_conformance" else None),
            echoed=rule.check == "response_schema_conformance"
            and (echoed(case.body, failure) or FINDINGS.sent_before(cul, getattr(failure, "instance", None))),
            sent=case.body,
        )
        broken.add(rule.name)
    for rule in RULES.values():
        if rule.name in broken or (rule.check in ran and rule.applies(case, response)):
            FINDINGS.checked(operation, rule)
    bounds.release_memory()  # large answers leave the heap scattered: given back as it grows


def verdict_of(groups: list[Group], strict: bool) -> str | None:
    """The failure message of an operation's test: one line per group of findings (MUST ones, and
    SHOULD ones too when `strict`), or None when the test passes."""
    shown = [g for g in groups if g.level == "MUST" or strict]
    if not shown:
        return None
    shown.sort(key=lambda g: (g.level != "MUST", -g.count))
    lines = [f"{g.level} {g.rule} x{g.count} (HTTP {g.status}): {g.message[:200]}" for g in shown]
    lines.append("reproductions: findings.md in the run's reports folder (reports/latest/findings.md)")
    return "\n".join(lines)
