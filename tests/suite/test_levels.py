"""A scenario's level is its closest mark: a test's own `should` over its module's `must`."""

from __future__ import annotations

import pytest

from workerprobe.suite.cases import SCENARIOS
from workerprobe.suite.shares import family_of, level_of


def test_a_tests_own_should_wins_over_its_modules_must() -> None:
    class Grab:
        items: list[pytest.Item] = []

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.items = list(session.items)

    grab = Grab()
    files = [str(SCENARIOS / "test_behaviour.py"), str(SCENARIOS / "test_shapes.py")]
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *files], plugins=[grab])
    levels = {item.name: level_of(item) for item in grab.items}
    assert levels["test_temperature_zero_repeats_itself"] == "SHOULD"  # @should in a must module
    assert levels["test_an_openai_model_name_is_mapped_or_not_found"] == "MUST"
    families = {item.name: family_of(item) for item in grab.items}
    assert (
        families["test_many_inputs_come_back_in_order"] == "embeddings"
        and families["test_store_and_metadata_on_a_chat_call_are_accepted"] == "chat"
    )


@pytest.mark.parametrize(
    ("model", "status", "finding"),
    [
        ("0", 400, False),  # the fuzzer's model, refused: OpenAI refuses an unknown model too
        ("à", 404, False),
        ("0", 500, True),  # a server error is not a refusal
        (None, 400, True),  # the suite's own model: a valid request refused
    ],
)
def test_a_model_the_target_was_not_said_to_serve_may_be_refused(
    model: str | None, status: int, finding: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from workerprobe.suite.registry import positive_within_window
    from workerprobe.suite.target import chat_model

    monkeypatch.setenv("WORKERPROBE_CHAT_MODEL", "@cf/meta/llama-3.1-8b-instruct")
    meta = SimpleNamespace(generation=SimpleNamespace(mode="positive"))
    case = SimpleNamespace(meta=meta, body={"model": model or chat_model(), "messages": []})
    response = SimpleNamespace(status_code=status, content=b'{"error": {"message": "No such model"}}')
    assert positive_within_window(case, response) is finding
