"""The prompt sets of the load profiles' chat requests (`--prompts`)."""

from __future__ import annotations

__all__ = ["PROMPT_SETS"]

# Prompt sets (--prompts): (prompt, max_tokens) pairs taken in turn.
PROMPT_SETS: dict[str, list[tuple[str, int | None]]] = {
    # A mix of short, capped and long answers.
    "mix": [
        ("What is 3 * 10?", None),
        ("Tell me about harbours in the north.", 128),
        ("Write a very long essay of at least 3000 words about Rome.", 64),
        ("Write a detailed story about a mountain village.", None),
    ],
    # Answers of 400 to 900 tokens with no max_tokens: past the 256-token default, so cut unless
    # the gateway continues them. (EMULATE_LONG_TEXT:n makes the emulator answer with its known
    # text of n tokens; a real model answers the request in front of it.)
    "long-answer": [
        (f"Write a detailed story of about {n * 3 // 4} words about a mountain village. EMULATE_LONG_TEXT:{n}", None)
        for n in (400, 600, 900)
    ],
    # Four questions asked over and over, greedily (temperature 0): what a cache is for.
    "repeated": [
        ("What is the capital of France? Answer in one sentence.", 64),
        ("Give three tips for writing clear documentation.", 96),
        ("What is 12 * 12?", 32),
        ("Summarise the water cycle in two sentences.", 96),
    ],
}
