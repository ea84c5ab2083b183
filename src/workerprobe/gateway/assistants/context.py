"""What a run shows the model, within its limits.

A run's model call sees its instructions, the thread as the run's `truncation_strategy` leaves it
(`last_messages`: the newest N; `auto`: messages dropped from the middle until the prompt fits
`max_prompt_tokens` and the model's context window), then the run's tool calls and outputs so far.

`max_prompt_tokens` and `max_completion_tokens` hold over the whole run, as in OpenAI's API: each
model call may use what the earlier calls of the run (a tool loop) left. A run that cannot fit,
or has no completion tokens left, ends `incomplete` with that reason, without a model call.
Prompt tokens are counted as the gateway counts them for the context check (the catalogue's chat
template around each message); the upstream's own count, in `usage`, is what later calls are
charged against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workerprobe import tokens
from workerprobe.catalogue import ChatTemplateTokens
from workerprobe.gateway.chat.generation import Message
from workerprobe.gateway.store.base import Document

__all__ = ["Incomplete", "Limits", "add_usage", "fit", "limits", "prompt_counter"]


class Incomplete(Exception):
    """The run ends `incomplete` before its next model call; `reason` is OpenAI's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    prompt: int | None  # prompt tokens the run may still use
    completion: int | None  # completion tokens it may still use


def limits(run: Document) -> Limits:
    """What the run's limits leave for its next model call (Incomplete when nothing is left)."""
    used = run.get("usage") or {}
    prompt = run.get("max_prompt_tokens")
    completion = run.get("max_completion_tokens")
    left = Limits(
        None if prompt is None else prompt - int(used.get("prompt_tokens") or 0),
        None if completion is None else completion - int(used.get("completion_tokens") or 0),
    )
    if left.completion is not None and left.completion <= 0:
        raise Incomplete("max_completion_tokens")
    if left.prompt is not None and left.prompt <= 0:
        raise Incomplete("max_prompt_tokens")
    return left


def add_usage(before: dict[str, Any] | None, usage: dict[str, Any]) -> dict[str, int]:
    """The run's usage after one more model call."""
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: int((before or {}).get(k) or 0) + int(usage.get(k) or 0) for k in keys}


def prompt_counter(template: ChatTemplateTokens) -> Callable[[list[Message]], int]:
    def count(messages: list[Message]) -> int:
        total = template.per_request
        for m in messages:
            total += template.per_message + tokens.count(m["content"])
            for call in m.get("tool_calls", ()):
                function = call["function"]
                total += tokens.count(function["name"]) + tokens.count(function["arguments"])
        return total

    return count


def fit(
    head: list[Message],
    thread: list[Message],
    tail: list[Message],
    strategy: dict[str, Any] | None,
    left: Limits,
    window: int | None,
    count: Callable[[list[Message]], int],
) -> list[Message]:
    """The messages of the next model call (Incomplete when they cannot fit `max_prompt_tokens`).
    `head`: the instructions; `thread`: the thread's messages, oldest first; `tail`: the run's tool
    calls and outputs. `window`: the model's context window, if known."""
    strategy = strategy or {"type": "auto"}
    kept = list(thread)
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        kept = kept[-int(strategy["last_messages"]) :]
    bounds = [b for b in (left.prompt, None if window is None else window - (left.completion or 0)) if b is not None]
    if strategy.get("type") == "auto" and bounds:
        bound = min(bounds)
        while len(kept) > 1 and count([*head, *kept, *tail]) > bound:
            del kept[1 if len(kept) > 2 else 0]  # the middle first: the first and the newest stay longest
    if left.prompt is not None and count([*head, *kept, *tail]) > left.prompt:
        raise Incomplete("max_prompt_tokens")
    return [*head, *kept, *tail]
