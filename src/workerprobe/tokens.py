"""A deterministic approximate tokenizer shared by the emulator, the gateway and the load kit.

A token is a word or a single punctuation mark, with the whitespace before it attached, so that
joining the tokens of a text gives the text back. English text comes out at roughly 1.2 to 1.4
tokens per word, close enough to a BPE tokenizer for metering and truncation checks. The emulator
generates text token by token with this definition, so its `usage` always agrees with its text.
"""

from __future__ import annotations

import re

__all__ = ["count", "split"]

_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")


def split(text: str) -> list[str]:
    """The tokens of `text`; `"".join(split(text)) == text`."""
    return _TOKEN.findall(text)


def count(text: str) -> int:
    """Number of tokens in `text` (trailing whitespace alone counts as one)."""
    return len(_TOKEN.findall(text))
