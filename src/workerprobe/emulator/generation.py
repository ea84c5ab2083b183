"""Deterministic text generation with observable truncation.

The rule (the README repeats it):
- a question with simple arithmetic ("What is 3 * 10?") is answered ("3 * 10 = 30.") and ends;
- a request for long output (an essay, a story, a detailed or long answer, "at least N words")
  runs on for thousands of tokens, so it stops at `max_tokens`: truncation is observable;
- an instruction to "answer with exactly one word: X" anywhere in the prompt is obeyed (the last
  one wins): the answer is "X." (so instructions that reach the model can be seen from outside);
- anything else gets a short answer of 16 to 63 tokens that ends naturally;
- `EMULATE_LONG_TEXT:<n>` anywhere in the conversation asks for the known long text: n tokens,
  the same for every request with that n, ending with a full stop. When the conversation ends
  with an assistant turn holding a prefix of it (optionally followed by one user turn asking to
  continue), the answer continues from exactly there: continuation is checkable by stitching.

With temperature 0 the text depends on the model and the prompt only (greedy decoding); with a
seed it depends on the seed too; with neither it is random, as a sampled model is. Text is made
token by token with `workerprobe.tokens`, so usage counts always agree with it.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

import orjson

from workerprobe import tokens

__all__ = ["Completion", "Prompt", "SchemaUnmet", "ToolCall", "arithmetic", "generate", "json_value"]

Finish = Literal["stop", "length", "tool_calls"]

# Common words, a few with non-ASCII letters so that every client meets multi-byte UTF-8.
_VOCABULARY = (
    "the of and to in is was for on that with as by at from it this be are which an or has have "
    "had not but were their its also been more other one all into new some time first after when "
    "most these two may only over such many years during where between city people world part "
    "history system known large made under well while each both early water river power state "
    "later often since around several three government form number long place used common high "
    "local light house area small great name modern work trade empire road stone bridge market "
    "garden music language science north south east west century island mountain village "
    "temple harbour library school family council season winter summer valley forest coast "
    "café naïve façade résumé über déjà fiancée"
).split()
_FILLER = ("model", "answer", "question", "detail", "example")

_LONG = re.compile(
    r"\b(essays?|stor(?:y|ies)|novel|article|report|chapter|in detail|detailed|long|lengthy|"
    r"elaborate|comprehensive|at least \d+ words|\d{3,} words)\b",
    re.IGNORECASE,
)
_ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/×x])\s*(-?\d+(?:\.\d+)?)")
_KEYWORD = re.compile(r"[A-Za-z][a-z]{3,}")
_LONG_TEXT = re.compile(r"EMULATE_LONG_TEXT:(\d{1,6})")
_ONE_WORD = re.compile(r"answer with exactly one word: (\w{1,40})", re.IGNORECASE)
LONG_ANSWER_TOKENS = 8192


@dataclass(frozen=True, slots=True)
class Prompt:
    """What generation needs from a request, whichever schema it came in."""

    text: str  # the whole rendered prompt: the key of greedy decoding
    last_user: str  # the last user turn, which decides the kind of answer
    max_tokens: int
    temperature: float | None = None
    seed: int | None = None
    sampling: tuple[float | None, ...] = ()  # top_p, top_k, penalties: part of the seeded key
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = None
    after_tool: bool = False  # the last turn is a tool result
    json_schema: dict[str, Any] | None = None  # JSON mode: the schema ({} for json_object)
    prefix: str = ""  # a trailing assistant turn: the answer so far, to be continued


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Completion:
    pieces: list[str]  # output tokens, in order; "".join(pieces) is the text
    finish: Finish
    tool_calls: list[ToolCall] = field(default_factory=list)
    json: Any = None  # JSON mode: the value (the text is its serialisation)
    tool_tokens: int = 0  # tokens spent on tool-call names and arguments

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + self.tool_tokens


def _rng(model: str, prompt: Prompt) -> random.Random:
    if prompt.temperature == 0:
        key = f"{model}\0{prompt.text}"
    elif prompt.seed is not None:
        key = f"{model}\0{prompt.text}\0{prompt.seed}\0{prompt.temperature}\0{prompt.sampling}"
    else:
        return random.Random(os.urandom(8))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def arithmetic(question: str) -> str | None:
    """The answer to the first simple binary operation in `question`, if there is one."""
    match = _ARITHMETIC.search(question)
    if match is None:
        return None
    left, op, right = match.groups()
    a, b = float(left), float(right)
    if op == "+":
        value = a + b
    elif op == "-":
        value = a - b
    elif op == "/":
        if b == 0:
            return f"{left} / {right} is undefined: division by zero."
        value = a / b
    else:
        value = a * b
    shown = str(int(value)) if value == int(value) else f"{value:.6g}"
    return f"{left} {op} {right} = {shown}."


def _stream(rng: random.Random, topic: list[str]) -> Iterator[str]:
    """Endless sentence-like tokens; any prefix is the same whatever length is taken."""
    capital = True
    first = True
    until_stop = rng.randint(6, 16)
    while True:
        block = rng.choices(_VOCABULARY, k=64)
        if topic:
            for i in rng.sample(range(64), k=9):
                block[i] = rng.choice(topic)
        for word in block:
            if until_stop == 0:
                yield "."
                capital = True
                until_stop = rng.randint(6, 16)
            if capital:
                word = word[:1].upper() + word[1:]
                capital = False
            yield word if first else " " + word
            first = False
            until_stop -= 1


def _words(rng: random.Random, n: int, topic: list[str]) -> list[str]:
    """An answer of `n` tokens that ends with a full stop."""
    out = list(islice(_stream(rng, topic), max(n - 1, 0)))
    if out and out[-1] == ".":
        out[-1] = " so"
    out.append(".")
    return out


def _answer_length(rng: random.Random, question: str) -> int:
    if _LONG.search(question):
        return LONG_ANSWER_TOKENS
    return rng.randint(16, 63)


def generate(model: str, prompt: Prompt) -> Completion:
    """The completion for `prompt`, cut at `prompt.max_tokens`."""
    rng = _rng(model, prompt)
    calls = _tool_calls(rng, prompt)
    if calls:
        size = sum(tokens.count(c.name) + tokens.count(orjson.dumps(c.arguments).decode()) for c in calls)
        return Completion(pieces=[], finish="tool_calls", tool_calls=calls, tool_tokens=size)
    if prompt.json_schema is not None:
        value = json_value(rng, prompt.json_schema, _topic(prompt.last_user))
        return _cut(tokens.split(orjson.dumps(value).decode()), prompt.max_tokens, value)
    if prompt.after_tool:
        pieces = tokens.split("Based on the tool result, ") + _words(rng, rng.randint(12, 40), [])
        return _cut(pieces, prompt.max_tokens)
    known = _LONG_TEXT.search(prompt.text)
    if known is not None:
        return _cut(_continue(known_text(int(known.group(1))), prompt.prefix), prompt.max_tokens)
    obeyed = _ONE_WORD.findall(prompt.text)
    if obeyed:
        return _cut(tokens.split(f"{obeyed[-1]}."), prompt.max_tokens)
    answer = arithmetic(prompt.last_user)
    if answer is not None:
        return _cut(tokens.split(answer), prompt.max_tokens)
    length = _answer_length(rng, prompt.last_user)
    topic = _topic(prompt.last_user)
    if length > prompt.max_tokens:  # cut: take only the prefix, never build the whole answer
        return Completion(pieces=list(islice(_stream(rng, topic), prompt.max_tokens)), finish="length")
    return _cut(_words(rng, length, topic), prompt.max_tokens)


def known_text(n: int) -> list[str]:
    """The tokens of the known long text of `n` tokens (independent of sampling settings)."""
    return _words(random.Random(n), max(n, 2), [])


def _continue(pieces: list[str], prefix: str) -> list[str]:
    """What follows `prefix` in `pieces` (all of them when the prefix is not one of theirs)."""
    if not prefix:
        return pieces
    done = 0
    for i, piece in enumerate(pieces):
        if done == len(prefix):
            return pieces[i:]
        if not prefix.startswith(piece, done):
            break
        done += len(piece)
    return [] if done == len(prefix) else pieces


def _cut(pieces: list[str], max_tokens: int, value: Any = None) -> Completion:
    if len(pieces) > max_tokens:
        return Completion(pieces=pieces[:max_tokens], finish="length", json=value)
    return Completion(pieces=pieces, finish="stop", json=value)


_INSTRUCTION_WORDS = frozenset(
    "what write very long about essay essays words tell least with that this please explain "
    "describe give make story article detailed answer into from have your".split()
)


def _topic(text: str) -> list[str]:
    """Content words of the question, sprinkled into the answer so it reads on topic."""
    words = (w.lower() for w in _KEYWORD.findall(text))
    return [w for w in words if w not in _INSTRUCTION_WORDS][:32]


# -- tools -------------------------------------------------------------------------------------


def _tool_name(tool: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    spec = tool.get("function", tool) if isinstance(tool.get("function"), dict) else tool
    params = spec.get("parameters")
    return str(spec.get("name", "")), str(spec.get("description") or ""), params if isinstance(params, dict) else {}


def _tool_calls(rng: random.Random, prompt: Prompt) -> list[ToolCall]:
    """Call a tool when the user's words name it (or the request forces one)."""
    if not prompt.tools or prompt.after_tool or prompt.tool_choice == "none":
        return []
    forced: str | None = None
    if isinstance(prompt.tool_choice, dict):
        forced = str((prompt.tool_choice.get("function") or {}).get("name", "")) or None
    words = {w.lower() for w in re.findall(r"\w+", prompt.last_user)}
    for tool in prompt.tools:
        name, description, params = _tool_name(tool)
        if forced is not None and name != forced:
            continue
        parts = {p.lower() for p in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name) if len(p) > 2}
        named = bool(parts & words) or any(w in words for w in re.findall(r"[a-z]{5,}", description.lower()))
        if forced is not None or prompt.tool_choice == "required" or named:
            call_id = f"chatcmpl-tool-{rng.getrandbits(64):016x}"
            return [ToolCall(call_id, name, _arguments(rng, params, prompt.last_user))]
    return []


def _arguments(rng: random.Random, params: dict[str, Any], text: str) -> dict[str, Any]:
    properties = params.get("properties") or {}
    if not isinstance(properties, dict):
        return {}
    required = params.get("required") or list(properties)
    names = [*_PROPER.findall(text)] or ["example"]
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    out: dict[str, Any] = {}
    for key in required:
        schema = properties.get(key)
        if not isinstance(schema, dict):
            continue
        if schema.get("type") == "string" and "enum" not in schema:
            out[key] = names[0]
        elif schema.get("type") in ("number", "integer") and numbers:
            n = float(numbers[0])
            out[key] = int(n) if schema.get("type") == "integer" else n
        else:
            out[key] = json_value(rng, schema, [])
    return out


_PROPER = re.compile(r"(?<!^)(?<![.?!]\s)\b([A-Z][a-z]+(?:\s[A-Z][a-z]+)*)")


# -- JSON mode ---------------------------------------------------------------------------------


def json_value(rng: random.Random, schema: dict[str, Any], topic: list[str], depth: int = 0) -> Any:
    """A value that meets a (simple) JSON Schema; `{}` gives an object with one answer."""
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    for key in ("anyOf", "oneOf"):
        if kind is None and isinstance(schema.get(key), list) and schema[key]:
            return json_value(rng, schema[key][0], topic, depth + 1)
    if kind is None and not schema:
        return {"answer": "".join(_words(rng, rng.randint(6, 14), topic)).strip()}
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        if depth > 6:
            return {}
        return {k: json_value(rng, v if isinstance(v, dict) else {}, topic, depth + 1) for k, v in props.items()}
    if kind == "array":
        items: dict[str, Any] = schema["items"] if isinstance(schema.get("items"), dict) else {"type": "string"}
        n = max(int(schema.get("minItems", 1)), 1)
        return [json_value(rng, items, topic, depth + 1) for _ in range(min(n + rng.randint(0, 2), 8))]
    if kind == "string":
        return "".join(_words(rng, rng.randint(3, 6), topic)).strip(" .")
    if kind == "integer":
        low, high = int(schema.get("minimum", 0)), int(schema.get("maximum", 100))
        return rng.randint(low, max(low, high))
    if kind == "number":
        bottom, top = float(schema.get("minimum", 0)), float(schema.get("maximum", 100))
        return round(rng.uniform(bottom, max(bottom, top)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    raise SchemaUnmet(f"unsupported schema type {kind!r}")


class SchemaUnmet(ValueError):
    """JSON mode cannot produce a value for this schema (the API's 5024)."""
