"""From findings to causes and reports a Worker's author acts on (no server: evidence given directly)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from workerprobe.suite import checks  # noqa: F401  (registers the OpenAI rules)
from workerprobe.suite.causes import causes
from workerprobe.suite.findings import Findings, curl, explanation, shell_quote
from workerprobe.suite.registry import RULES, Finding
from workerprobe.suite.reports import FIRST_SCREEN, write
from workerprobe.suite.verdict import Outcome, judge

CHAT = "POST /v1/chat/completions"
EMBED = "POST /v1/embeddings"
MODELS = "GET /v1/models"
ASSISTANTS = "POST /v1/assistants"
HEADER = {"target": "http://127.0.0.1:1/v1", "run_id": "r", "started": "s", "finished": "f", "version": "v"}


def _fail(seen: Findings, op: str, rule: str, message: str, status: int = 400, said: str | None = None) -> None:
    seen.sent(op, status, valid=True)
    seen.failed(op, "coverage", RULES[rule], Finding(RULES[rule], message, op), f"curl {op}", status, said=said)


def test_one_behaviour_on_many_operations_is_one_cause() -> None:
    seen = Findings()
    for op in (CHAT, EMBED, MODELS):
        _fail(seen, op, "openai_error_fields", "HTTP 400 error envelope lacks 'param'")
    (cause,) = causes(seen, [])
    assert cause.operations == {CHAT: 1, EMBED: 1, MODELS: 1}
    assert "client.chat.completions.create" in cause.calls and "client.embeddings.create" in cause.calls


def test_answers_that_say_different_things_are_different_causes() -> None:
    seen = Findings()
    _fail(seen, CHAT, "not_a_server_error", "server error", 500, said="Cannot read properties of undefined")
    _fail(seen, CHAT, "not_a_server_error", "server error", 500, said="Cannot read properties of undefined")
    _fail(seen, CHAT, "not_a_server_error", "server error", 500, said="model not found: @cf/x")
    found = causes(seen, [])
    assert len(found) == 2 and sorted(c.responses for c in found) == [1, 2]
    assert any("Cannot read properties" in c.what for c in found)


def test_must_first_then_what_breaks_most() -> None:
    seen = Findings()
    _fail(seen, CHAT, "openai_error_fields", "lacks 'param'")  # SHOULD
    _fail(seen, MODELS, "openai_stream_done", "no [DONE]")  # MUST, one operation
    for op in (CHAT, EMBED):
        _fail(seen, op, "not_a_server_error", "server error", 500, said="boom")  # MUST, two
    ranked = [c.rule for c in causes(seen, [])]
    assert ranked == ["not_a_server_error", "openai_stream_done", "openai_error_fields"]


def test_a_retired_api_comes_after_the_current_ones() -> None:
    seen = Findings()
    for _ in range(5):
        _fail(seen, ASSISTANTS, "not_a_server_error", "server error", 500, said="boom")
    _fail(seen, MODELS, "not_a_server_error", "server error", 500, said="other")
    first, second = causes(seen, [])
    assert not first.retired and first.operations == {MODELS: 1}
    assert second.retired


def test_scenarios_failing_on_one_error_are_one_cause() -> None:
    outcomes = [
        Outcome("t.py::test_a", "chat", "python", "MUST", "failed", "KeyError: 'choices' at id chatcmpl-1a2b3c4d5e"),
        Outcome("t.py::test_b", "chat", "node", "MUST", "failed", "KeyError: 'choices' at id chatcmpl-99ff00aa11"),
        Outcome("t.py::test_c", "chat", "python", "MUST", "failed", "TimeoutError after 30 s"),
        Outcome("t.py::test_d", "chat", "python", "MUST", "passed"),
    ]
    found = causes(Findings(), outcomes)
    assert sorted(len(c.scenarios) for c in found) == [1, 2]


def test_a_family_that_is_not_there_is_one_cause_not_one_per_rule() -> None:
    seen = Findings()
    for op in (ASSISTANTS, "GET /v1/assistants"):
        for _ in range(3):
            seen.sent(op, 404, valid=True, no_route=True)
        rule = RULES["openai_error_fields"]
        seen.failed(op, "coverage", rule, Finding(rule, "x", op), "c", 404)
    outcomes = [Outcome("t.py::test_assistant", "assistants", "python", "MUST", "failed", "NotFoundError")]
    (cause,) = causes(seen, outcomes)
    assert cause.rule == "not_implemented" and cause.level == "MUST"  # creating one is the family's core
    assert set(cause.operations) == {ASSISTANTS, "GET /v1/assistants"}
    assert cause.scenarios == ["test_assistant (python SDK)"]


def test_the_reports_put_the_cause_to_fix_first_on_top(tmp_path: Path) -> None:
    seen = Findings()
    for i in range(12):
        seen.sent(CHAT, 200, valid=True)
        _fail(seen, CHAT, "not_a_server_error", "server error", 500, said=f"failure kind {chr(97 + i)}")
    _fail(seen, EMBED, "openai_error_fields", "HTTP 400 error envelope lacks 'param'")
    write(tmp_path, HEADER, judge(seen, []), seen)
    summary = (tmp_path / "summary.md").read_text()
    top = summary.split("## Fix first", 1)[1].split("## Readiness", 1)[0]
    assert top.count("**MUST**") == FIRST_SCREEN and "more causes" in top
    assert "(findings.md#cause-1)" in top
    every = json.loads((tmp_path / "findings.json").read_text())["causes"]
    assert len(every) == 13 and every[-1]["rule"] == "openai_error_fields"  # SHOULD last
    assert every[0]["openai"]  # the OpenAI behaviour each cause departs from
    details = (tmp_path / "findings.md").read_text()
    assert details.index('id="cause-1"') < details.index('id="cause-13"')
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["causes_total"] == {"MUST": 12, "SHOULD": 1} and len(data["causes"]) == FIRST_SCREEN


@pytest.mark.parametrize(
    "value",
    [b"plain", "it's", b"a\nb\tc", b"\xff\xfe not utf-8", "\u00e9 \u00fc"]
    + [b"\xed\xa0\x80 lone", "\x1b[31m", b"\\x41 %d"],
    ids=["plain", "quote", "controls", "not-utf8", "accents", "lone-surrogate", "escape", "backslash-percent"],
)  # the lone surrogate as its bytes: as a str, no test report (Allure's JSON, xdist's channel) can hold it
def test_a_reproduction_pastes_exactly_whatever_bytes_it_holds(value: str | bytes) -> None:
    if value.startswith(b"\xed\xa0\x80") if isinstance(value, bytes) else False:
        value = value.decode("utf-8", "surrogatepass")  # '\ud800 lone', a str no codec writes
    word = shell_quote(value)
    assert word.isprintable()  # no control byte reaches the report
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    assert subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout == raw


def test_a_body_with_a_nul_byte_or_over_4_kb_is_said(tmp_path: Path) -> None:
    command = curl("POST", "http://127.0.0.1:1/v1/x", {}, b'{"a": "\x00\xff"}')
    body = command.split("--data-binary ", 1)[1]
    assert subprocess.run(["bash", "-c", f"cat {body[1:]}"], capture_output=True).stdout == b'{"a": "\x00\xff"}'
    long = curl("POST", "http://127.0.0.1:1/v1/x", {}, b"x" * 10_000)
    assert long.startswith("# the body was 10000 bytes") and long.count("x") < 4200


def test_data_the_run_wrote_that_reads_back_wrong_is_blamed_on_the_create() -> None:
    from workerprobe.suite.blame import culprit

    seen = Findings()
    seen.made_by("asst_junk", ASSISTANTS, "curl -X POST .../v1/assistants --data-binary '{\"tools\": null}'")
    rule = RULES["response_schema_conformance"]
    for label in ("GET /v1/assistants", "GET /v1/assistants/{assistant_id}"):
        seen.sent(label, 200, valid=True)
        seen.failed(label, "fuzzing", rule, "None is not of type 'array'", f"curl {label}", 200, culprit="asst_junk")
    (cause,) = causes(seen, [])
    assert list(cause.operations) == [ASSISTANTS] and cause.responses == 2
    assert cause.read_by == ["GET /v1/assistants", "GET /v1/assistants/{assistant_id}"]
    assert '"tools": null' in cause.repro and cause.status == 0
    # data nobody in this run wrote stays where it was read
    other = Findings()
    other.failed("GET /v1/assistants", "fuzzing", rule, "None is not of type 'array'", "curl", 200, culprit="asst_x")
    assert list(causes(other, [])[0].operations) == ["GET /v1/assistants"]

    class Answer:
        status_code = 200
        headers = {"content-type": "application/json"}

        @staticmethod
        def json() -> object:
            return {"object": "list", "data": [{"id": "asst_ok"}, {"id": "asst_junk", "tools": None}]}

    class Failure:
        instance_path = ["data", 1, "tools"]

    assert culprit(Answer(), Failure()) == "asst_junk"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            {
                "error": {
                    "message": "Chat completion failed",
                    "type": "api_error",
                    "details": "Unexpected end of JSON input",
                }
            },
            "Chat completion failed: Unexpected end of JSON input",
        ),
        ({"error": {"message": "Model not found", "type": "invalid_request_error"}}, "Model not found"),
        ({"error": {"message": "bad: x", "detail": "bad: x"}}, "bad: x"),
        ({"detail": "Not Found"}, "Not Found"),
    ],
)
def test_an_error_says_what_its_worker_added_beside_the_message(body: dict[str, object], said: str) -> None:
    """Two 500s with one message and two explanations are two causes, each shown."""

    class Answer:
        content = json.dumps(body).encode()

    assert explanation(Answer()) == said


def test_values_accepted_as_sent_on_many_fields_are_one_cause_ranked_after_what_valid_requests_meet() -> None:
    from workerprobe.suite.blame import echoed

    class Failure:
        def __init__(self, path: list[object], value: object) -> None:
            self.instance_path, self.instance = path, value

    assert echoed({"temperature": "AAA"}, Failure(["temperature"], "AAA"))
    assert not echoed({"temperature": "AAA"}, Failure(["temperature"], "BBB"))
    assert not echoed({"temperature": 1}, Failure(["temperature"], True))  # 1 == True, but not what was sent
    assert not echoed({"name": "x"}, Failure([], {"name": "x"}))
    assert echoed({"tools": [{"type": 0}]}, Failure(["tools", 0, "type"], 0))

    class Violates:
        title = "Response violates schema"

        def __init__(self, message: str) -> None:
            self.message = self._unique_key = message  # schemathesis keys a failure by its field

    seen = Findings()
    rule = RULES["response_schema_conformance"]
    seen.made_by("asst_1", ASSISTANTS, "curl -X POST .../v1/assistants --data-binary '{\"top_p\": {}}'")
    for field, value in (("temperature", '"AAA"'), ("top_p", "{}"), ("metadata", '"AAA"')):
        message = f"{value} is wrong. Schema at /components/schemas/Assistant/properties/{field}: {{}} Value: {value}"
        seen.sent(ASSISTANTS, 200, valid=False)
        seen.failed(ASSISTANTS, "fuzzing", rule, Violates(message), f"curl {field}", 200, echoed=True)
    read = "{} is not of type. Schema at /components/schemas/Assistant/properties/top_p: {} Value: {}"
    seen.failed("GET /v1/assistants", "fuzzing", rule, Violates(read), "curl list", 200, culprit="asst_1")
    _fail(seen, CHAT, "openai_error_envelope", "HTTP 500 without the OpenAI error envelope: None", 500)
    first, echo = causes(seen, [])
    assert first.rule == "openai_error_envelope"  # what a valid request meets comes first
    assert echo.echo and echo.responses == 4 and echo.read_by == ["GET /v1/assistants"]
    assert echo.fields == ["temperature", "top_p", "metadata"] and "`top_p`" in echo.what


def test_an_answer_quoting_the_requests_own_value_back_is_one_cause() -> None:
    class Failure:
        title = "Server error"
        message = ""

    seen = Findings()
    rule = RULES["not_a_server_error"]
    quoted: list[tuple[object, str]] = [("AAA", "AAA"), (False, "False"), ([None, None], "[None, None]"), (0, "0")]
    for value, text in quoted:
        said = f"APIConnectionError: Unsupported response_format type - {text} LiteLLM: model group"
        seen.sent(CHAT, 500, valid=False)
        seen.failed(CHAT, "fuzzing", rule, Failure(), "curl", 500, said=said, sent={"response_format": value})
    (cause,) = causes(seen, [])
    assert cause.responses == 4
    other = Findings()
    other.failed(CHAT, "fuzzing", rule, Failure(), "curl", 500, said="No such model", sent={"model": "@cf/x/y"})
    other.failed(CHAT, "fuzzing", rule, Failure(), "curl", 500, said="Bad input", sent={"model": "@cf/x/y"})
    assert len(causes(other, [])) == 2  # what differs beyond the request's values still tells them apart


def test_one_refusal_of_workers_ai_answered_as_500_is_one_cause_whatever_its_details() -> None:
    from workerprobe.suite.findings import _normalised

    same = [
        "Chat completion failed: 5006: AiError: Bad input: Error: Value at '/seed' is 0, less than minimum 1",
        "Chat completion failed: 5006: AiError: Bad input: Error: Type mismatch of '/tools', 'boolean' not in 'array'",
    ]
    assert _normalised(same[0]) == _normalised(same[1])
    other = "Chat completion failed: Cannot read properties of undefined (reading 'map')"
    assert _normalised(other) != _normalised(same[0])


def test_a_value_an_earlier_write_sent_is_recognised_when_it_comes_back() -> None:
    seen = Findings()
    seen.wrote("asst_1", {"top_p": "AAA", "name": "x", "temperature": 2**70})  # past 64 bits: not compared
    assert seen.sent_before("asst_1", "AAA") and not seen.sent_before("asst_1", "BBB")
    assert not seen.sent_before("asst_2", "AAA") and not seen.sent_before(None, "AAA")


def test_a_rule_broken_on_an_operation_outside_openais_api_is_a_should() -> None:
    seen = Findings()
    rule = RULES["not_a_server_error"]

    class Failure:
        title = "Server error"
        message = ""

    seen.failed("GET /models/search", "coverage", rule, Failure(), "curl", 500, said="TypeError")
    seen.failed(MODELS, "coverage", rule, Failure(), "curl", 500, said="TypeError")
    levels = {g.operation: g.level for g in seen.groups.values()}
    assert levels == {"GET /models/search": "SHOULD", MODELS: "MUST"}


def test_an_error_without_the_envelope_is_a_cause_per_status() -> None:
    seen = Findings()
    _fail(seen, MODELS, "openai_error_envelope", "HTTP 401 without the OpenAI error envelope: None", 401)
    _fail(seen, CHAT, "openai_error_envelope", "HTTP 500 without the OpenAI error envelope: None", 500)
    _fail(seen, EMBED, "openai_error_envelope", "HTTP 500 without the OpenAI error envelope: 'x'", 500)
    assert sorted(c.responses for c in causes(seen, [])) == [1, 2]  # a 401 as text, and a 500 as text
