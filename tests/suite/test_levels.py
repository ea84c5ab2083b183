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
