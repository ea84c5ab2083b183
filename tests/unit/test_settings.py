from __future__ import annotations

from pathlib import Path

import pytest

import workerprobe
from workerprobe.suite.defects import validate


def test_unknown_defects_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown defects"):
        validate(["no_such_bug"])
    assert validate([]) == frozenset()


def test_no_production_module_knows_the_seeded_defects() -> None:
    """Test doubles come in through the app factory's seams, never through flags. The suite and
    the load harness (loadkit) are the tools that serve them; nothing they serve knows them."""
    package = Path(workerprobe.__file__).parent
    for source in package.rglob("*.py"):
        if {"suite", "loadkit"} & set(source.relative_to(package).parts):
            continue
        text = source.read_text()
        assert "defects" not in text and "DEFECTS" not in text, source
