from __future__ import annotations

import pytest

from workerprobe import tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("Hello, world!", ["Hello", ",", " world", "!"]),
        ("3 * 10 = 30.", ["3", " *", " 10", " =", " 30", "."]),
        ("  café  ", ["  café", "  "]),
        ("a\nb", ["a", "\nb"]),
    ],
)
def test_split(text: str, expected: list[str]) -> None:
    assert tokens.split(text) == expected
    assert "".join(tokens.split(text)) == text
    assert tokens.count(text) == len(expected)


def test_round_trip_on_mixed_text() -> None:
    text = "Über naïve façades—«quoted» text, tabs\tand 12.5% of $3 … done  "
    assert "".join(tokens.split(text)) == text
