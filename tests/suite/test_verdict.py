"""The matrix and the verdict claim only what was seen (no server: evidence is given directly)."""

from __future__ import annotations

from pathlib import Path

from workerprobe.suite import checks  # noqa: F401  (registers the OpenAI rules)
from workerprobe.suite.conformance import implementation, matrix
from workerprobe.suite.findings import Findings, curl, merge
from workerprobe.suite.registry import RULES, Finding
from workerprobe.suite.verdict import Outcome, judge

CHAT = "POST /v1/chat/completions"
MODIFY = "POST /v1/assistants/{assistant_id}"


def test_implemented_only_on_positive_evidence() -> None:
    seen = Findings()
    seen.sent(CHAT, 401, valid=True)  # only refused: nothing known
    assert implementation(seen, CHAT) == "unknown"
    seen.sent(CHAT, 404, valid=True)
    assert implementation(seen, CHAT) == "unknown"  # a 401 is not a "no such route"
    lonely = Findings()
    lonely.sent(CHAT, 404, valid=True)
    lonely.sent(CHAT, 405, valid=True)
    assert implementation(lonely, CHAT) == "not implemented"
    lonely.sent(CHAT, 200, valid=True)
    assert implementation(lonely, CHAT) == "implemented"
    drawn = Findings()
    drawn.sent(MODIFY, 404, valid=True, evidence=False)  # a generated id that does not exist
    assert implementation(drawn, MODIFY) == "unknown"
    drawn.seen_by_sdk(MODIFY, 200)
    assert implementation(drawn, MODIFY) == "implemented"


def test_a_cell_passes_only_where_its_rule_was_checked() -> None:
    seen = Findings()
    seen.sent(CHAT, 200, valid=True)
    seen.checked(CHAT, RULES["openai_stream_done"])
    seen.checked(CHAT, RULES["openai_stream_done"])
    rows = {r["operation"]: r for r in matrix(seen, [CHAT, "GET /v1/models"])["rows"]}
    assert rows[CHAT]["cells"]["openai_stream_done"] == {"state": "pass", "checked": 2, "failed": 0}
    assert rows[CHAT]["cells"]["openai_n_honoured"] == {"state": "not seen"}
    assert rows["GET /v1/models"]["cells"]["openai_stream_done"] == {"state": "n/a"}


def _fail(seen: Findings, rule: str, message: str, repro: str, status: int = 400, op: str = CHAT) -> None:
    seen.failed(op, "coverage", RULES[rule], Finding(RULES[rule], message, op), repro, status)


def test_failures_group_by_cause_with_the_shortest_reproduction(tmp_path: Path) -> None:
    one, two = Findings(), Findings()
    _fail(one, "openai_error_fields", "HTTP 400 error envelope lacks 'param'", "curl -X POST long-one")
    _fail(one, "openai_error_fields", "HTTP 401 error envelope lacks 'param'", "curl -X POST x")
    _fail(two, "openai_error_fields", "HTTP 400 error envelope lacks 'param'", "curl -X POST")
    one.dump(tmp_path / "a.json")
    two.dump(tmp_path / "b.json")
    merged = merge([tmp_path / "a.json", tmp_path / "b.json"])
    (group,) = merged.groups.values()  # numbers in our own messages do not make a new cause
    assert group.count == 3 and group.repro == "curl -X POST"


def test_verdicts() -> None:
    refused = Findings()
    for _ in range(10):
        refused.sent(CHAT, 401, valid=True)
    assert judge(refused, []).word == "UNVERIFIED" and judge(refused, []).exit_code == 2
    assert judge(Findings(), []).exit_code == 2  # nothing answered
    good = Findings()
    good.sent(CHAT, 200, valid=True)
    _fail(good, "openai_stream_role", "the first chunk's delta does not carry role 'assistant'", "curl")
    verdict = judge(good, [Outcome("t", "chat", "python", "MUST", "passed")])
    assert verdict.exit_code == 0 and "SHOULD" in verdict.reason
    assert verdict.table["chat"]["python"].startswith("READY WITH LIMITATIONS")
    _fail(good, "openai_stream_done", "the stream does not end with data: [DONE]", "curl")
    bad = judge(good, [])
    assert bad.word == "FAIL" and bad.exit_code == 1 and bad.table["chat"]["python"].startswith("NOT READY")
    assert bad.causes[0].rule == "openai_stream_done"  # MUST first
    assert bad.table["chat"]["node"].startswith("NOT RUN")


def test_a_reproduction_can_be_pasted() -> None:
    command = curl(
        "POST",
        "http://127.0.0.1:1/v1/chat/completions",
        {"Authorization": "Bearer sk-secret", "Content-Type": "application/json"},
        b'{"max_tokens": 16, "messages": []}',
    )
    assert "sk-secret" not in command and '"Authorization: Bearer $API_KEY"' in command
    assert '"max_tokens": 16' in command  # nothing but credentials is hidden


def test_a_probe_with_another_method_is_no_operation_to_show() -> None:
    seen = Findings()
    seen.sent("GET /v1/models", 200, valid=True)
    seen.sent("TRACE /v1/models", 405, valid=False)  # unsupported_method's probe
    verdict = judge(seen, [Outcome("t", "models", "python", "MUST", "passed")], operations=["GET /v1/models"])
    assert verdict.table["models"]["python"] == "READY"


def test_what_the_budget_left_unchecked_is_never_a_pass() -> None:
    from workerprobe.suite.findings import BUDGET

    seen = Findings()
    seen.sent(CHAT, 200, valid=True)
    seen.checked(CHAT, RULES["openai_stream_done"])
    for _ in range(3):
        seen.not_made(CHAT, BUDGET)  # 1 call made of 4: the operation is not checked
    skipped = Outcome("t.py::test_chat", "chat", "python", "MUST", "skipped", f"not run: costs 15 [{BUDGET}]")
    verdict = judge(seen, [skipped], cost={"max_neurons": 5.0}, operations=[CHAT])
    assert verdict.word == "UNVERIFIED" and verdict.exit_code == 2
    assert "not checked for the budget (--max-neurons 5): chat" in verdict.reason
    assert verdict.table["chat"]["python"].startswith("NOT CHECKED")
    cells = matrix(seen, [CHAT])["rows"][0]
    assert cells["checked"] == "not checked" and cells["cells"]["openai_n_honoured"] == {"state": "not checked"}


def test_a_few_calls_not_made_are_named_in_a_pass() -> None:
    from workerprobe.suite.findings import BUDGET

    seen = Findings()
    for _ in range(10):
        seen.sent(CHAT, 200, valid=True)
    seen.not_made(CHAT, BUDGET)
    verdict = judge(seen, [Outcome("t.py::test_chat", "chat", "python", "MUST", "passed")], operations=[CHAT])
    assert verdict.exit_code == 0 and "1 calls not made for the budget on 1 operation(s)" in verdict.reason
    assert matrix(seen, [CHAT])["rows"][0]["checked"] == "partly checked"


def test_a_failure_seen_stands_whatever_was_left_unchecked() -> None:
    from workerprobe.suite.findings import BUDGET

    seen = Findings()
    _fail(seen, "openai_stream_done", "the stream does not end with data: [DONE]", "curl")
    seen.sent(CHAT, 200, valid=True)
    for _ in range(5):
        seen.not_made(CHAT, BUDGET)
    assert judge(seen, [], operations=[CHAT]).word == "FAIL"


def test_the_assistants_rows_are_said_to_check_a_retired_api() -> None:
    """With the Assistants rows in the table, the verdict says OpenAI retired that API and points to
    the Responses and Conversations rows; a table without them says nothing of it."""
    from workerprobe.suite.reports import retired_note
    from workerprobe.suite.verdict import Verdict

    full = Verdict(
        0,
        "PASS",
        "every MUST holds",
        table={f: {} for f in ("chat", "responses", "conversations", "assistants", "threads", "runs")},
    )
    note = retired_note(full)
    assert note is not None and "2026-08-26" in note
    assert "the assistants, threads, runs rows" in note and "the responses and conversations rows" in note
    assert retired_note(Verdict(0, "PASS", "", table={"chat": {}, "responses": {}})) is None
