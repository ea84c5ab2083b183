from __future__ import annotations

import pytest
from pydantic import ValidationError

from workerprobe.gateway.defects import validate
from workerprobe.settings import GatewaySettings


def test_defects_are_refused_outside_test_mode() -> None:
    with pytest.raises(ValidationError, match="TEST_MODE"):
        GatewaySettings(defects=["create_201"], _env_file=None)  # type: ignore[call-arg]
    assert GatewaySettings(defects=["create_201"], test_mode=True, _env_file=None).defects == ["create_201"]  # type: ignore[call-arg]


def test_unknown_defects_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown defects"):
        validate(["no_such_bug"])
    assert validate([]) == frozenset()
