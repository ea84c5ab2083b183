"""The free-plan methods of the reference gateway, each against a real emulator process:
retries, fallback, continuation, part-by-part, context window, embedding truncation, cache,
budgets and per-key rate limits, and their metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import CHAT_MODEL, KEY, UPSTREAM_TOKEN
from workerprobe import tokens
from workerprobe.emulator.generation import known_text
from workerprobe.procs import gateway_env, gateway_over_emulator, serve
from workerprobe.sse import Decoder

FALLBACK = "@cf/meta/llama-3.2-1b-instruct"
BUDGETED = "@cf/meta/llama-3.1-8b-instruct-fp8-fast"  # a tiny budget, and a fallback
BUDGETED_ALONE = "@cf/google/gemma-4-26b-a4b-it"  # a tiny budget, no fallback
EMBEDDING_MODEL = "@cf/baai/bge-base-en-v1.5"


@dataclass
class Pair:
    gateway: str
    emulator: str
    http: httpx.Client
    database: str

    def complete(self, **kwargs: Any) -> Any:
        """A chat completion through the official SDK (its client closed after)."""
        with openai.OpenAI(base_url=f"{self.gateway}/v1", api_key=KEY, max_retries=0) as client:
            return client.chat.completions.create(**kwargs)

    def upstream_calls(self) -> int:
        report = httpx.get(f"{self.emulator}/__emulator/usage").json()
        return sum(a["requests"] for a in report["accounts"].values())

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def chat(self, content: str, key: str = KEY, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", **body.pop("headers", {})}
        payload = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": content}], **body}
        return self.http.post("/v1/chat/completions", json=payload, headers=headers)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    emulator_env = {"CF_API_TOKEN": UPSTREAM_TOKEN, "WORKERPROBE_EMULATOR_RETRY_AFTER_S": "0.3"}
    with serve(["emulator"], env=emulator_env) as emulator:
        database = str(tmp_path_factory.mktemp("free-plan") / "gateway.sqlite3")
        env = gateway_env(
            emulator.url,
            api_key=KEY,
            token=UPSTREAM_TOKEN,
            database=database,
            account="free-plan-tests",
            retry_attempts="3",
            retry_base_s="0.01",
            retry_max_s="0.05",
            cache_ttl_s="600",
            continuation_models=f'["{CHAT_MODEL}"]',
            continuation_max_tokens="2000",
            fallback_models=f'{{"{CHAT_MODEL}": "{FALLBACK}", "{BUDGETED}": "{FALLBACK}"}}',
            model_daily_neurons=f'{{"{BUDGETED}": 0.001, "{BUDGETED_ALONE}": 0.001}}',
        )
        with serve(["gateway"], env=env) as gateway:
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as http:
                yield Pair(gateway.url, emulator.url, http, database)


def _stream(pair: Pair, content: str, **body: Any) -> tuple[str, str | None, dict[str, Any] | None, httpx.Headers]:
    """Text, finish reason, usage and headers of a streamed chat completion."""
    payload = {
        "model": body.pop("model", CHAT_MODEL),
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **body,
    }
    decoder = Decoder()
    text, finish, usage = [], None, None
    with pair.http.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_raw():
            for event in decoder.feed(chunk):
                if event.data == "[DONE]":
                    continue
                data = httpx.Response(200, content=event.data).json()
                assert "error" not in data, data
                if data.get("usage"):
                    usage = data["usage"]
                for choice in data["choices"]:
                    text.append(choice["delta"].get("content") or "")
                    finish = choice["finish_reason"] or finish
        return "".join(text), finish, usage, response.headers


# -- retries and fallback ------------------------------------------------------------------------


def test_capacity_errors_are_retried_until_the_answer(pair: Pair) -> None:
    before = pair.metric("workerprobe_free_plan_events_total", method="retry", event="capacity")
    response = pair.chat("Hello there EMULATE_FAULT:3040@2")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    assert pair.metric("workerprobe_free_plan_events_total", method="retry", event="capacity") == before + 2


def test_the_gateways_retries_and_the_sdks_do_not_multiply(tmp_path: Path) -> None:
    """A persistent 3040: the gateway retries it 3 times, then says `x-should-retry: false`, so the
    SDK with its default retries makes no more requests (4 upstream calls, not 12). A gateway of
    its own: the retries would spend the shared one's retry budget."""
    retrying = {"retry_attempts": "3", "retry_base_s": "0.01", "retry_max_s": "0.05"}
    emulator_env = {"WORKERPROBE_EMULATOR_RETRY_AFTER_S": "0.01"}
    stack = gateway_over_emulator(
        api_key=KEY, token=UPSTREAM_TOKEN, emulator_env=emulator_env, database=str(tmp_path / "g.sqlite3"), **retrying
    )
    with (
        stack as (gateway, emulator),
        httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"}) as http,
    ):
        pair = Pair(gateway.url, emulator.url, http, "")
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY) as client:  # default max_retries (2)
            with pytest.raises(openai.RateLimitError) as raised:
                client.chat.completions.create(
                    model=CHAT_MODEL, messages=[{"role": "user", "content": "Busy EMULATE_FAULT:3040"}]
                )
        assert raised.value.response.headers["x-should-retry"] == "false"
        answered = pair.metric("workerprobe_requests_total", endpoint="create_chat_completion", status="429")
        retried = pair.metric("workerprobe_free_plan_events_total", method="retry", event="capacity")
        assert (answered, retried) == (1, 3)  # one request from the SDK: 1 + 3 upstream calls


def test_upstream_5xx_is_retried_and_a_stream_before_its_first_byte(pair: Pair) -> None:
    assert pair.chat("Plain EMULATE_FAULT:502@1").status_code == 200
    text, finish, _, _ = _stream(pair, "Streamed EMULATE_FAULT:503@2")
    assert text and finish == "stop"


def test_retry_after_is_honoured(pair: Pair) -> None:
    # The emulator says Retry-After: 0.3 on 3021; the gateway's own backoff is at most 0.05 s.
    started = time.monotonic()
    response = pair.chat("Limited EMULATE_FAULT:3021@1")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_the_daily_quota_is_never_retried(pair: Pair) -> None:
    calls = pair.upstream_calls()
    response = pair.chat("Quota EMULATE_FAULT:4006@1")  # a retry would have succeeded
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "insufficient_quota"
    assert pair.upstream_calls() == calls  # the refused call is not metered, and none followed


def test_bad_input_is_never_retried(pair: Pair) -> None:
    before = pair.metric("workerprobe_free_plan_events_total", method="retry", event="upstream_5xx")
    response = pair.chat("Bad EMULATE_FAULT:no-such-fault")
    assert response.status_code == 400
    assert pair.metric("workerprobe_free_plan_events_total", method="retry", event="upstream_5xx") == before


def test_a_stream_cut_after_its_first_byte_is_not_retried(pair: Pair) -> None:
    payload = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "Write a long essay EMULATE_FAULT:cut-stream"}],
        "stream": True,
    }
    body = pair.http.post("/v1/chat/completions", json=payload).text
    assert body.count('"role":"assistant"') == 1  # one answer: nothing repeated
    assert '"error"' in body and body.rstrip().endswith("data: [DONE]")


def test_fallback_model_when_capacity_persists(pair: Pair) -> None:
    # 1 call + 3 retries fail with 3040; the fallback model answers.
    response = pair.chat("Busy model EMULATE_FAULT:3040@4")
    assert response.status_code == 200, response.text
    assert response.headers["x-workerprobe-fallback-model"] == FALLBACK
    assert pair.metric("workerprobe_free_plan_events_total", method="fallback", event="capacity") >= 1


def test_a_model_whose_budget_is_spent_falls_back_or_is_refused(pair: Pair) -> None:
    first = pair.chat("Tell me about rivers", model=BUDGETED)
    assert first.status_code == 200 and "x-workerprobe-fallback-model" not in first.headers
    then = pair.chat("Tell me about rivers", model=BUDGETED)
    assert then.status_code == 200, then.text
    assert then.headers["x-workerprobe-fallback-model"] == FALLBACK
    assert then.json()["model"] == BUDGETED  # the client's name stays; the header says who answered
    assert pair.chat("Tell me about lakes", model=BUDGETED_ALONE).status_code == 200
    refused = pair.chat("Tell me about lakes", model=BUDGETED_ALONE)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert BUDGETED_ALONE in refused.json()["error"]["message"]


# -- continuation --------------------------------------------------------------------------------


def test_cut_answer_is_continued_and_stitched(pair: Pair) -> None:
    expected = "".join(known_text(700))
    completion = pair.complete(model=CHAT_MODEL, messages=[{"role": "user", "content": "Recite EMULATE_LONG_TEXT:700"}])
    assert completion.choices[0].message.content == expected  # no repeated or missing text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 700
    # Three upstream calls (256 + 256 + 188 tokens): the prompt tokens of all of them.
    single = pair.complete(
        model=CHAT_MODEL, max_tokens=5, messages=[{"role": "user", "content": "Recite EMULATE_LONG_TEXT:700"}]
    )
    assert single.usage is not None and completion.usage.prompt_tokens > 3 * single.usage.prompt_tokens


def test_cut_answer_is_continued_in_a_stream(pair: Pair) -> None:
    text, finish, usage, _ = _stream(pair, "Recite EMULATE_LONG_TEXT:600")
    assert text == "".join(known_text(600))
    assert finish == "stop"
    assert usage is not None and usage["completion_tokens"] == 600


def test_continuation_stops_at_the_clients_max_tokens(pair: Pair) -> None:
    completion = pair.complete(
        model=CHAT_MODEL, max_tokens=300, messages=[{"role": "user", "content": "Recite EMULATE_LONG_TEXT:700"}]
    )
    assert completion.choices[0].message.content == "".join(known_text(700)[:300])
    assert completion.choices[0].finish_reason == "length"  # truthful: cut at the client's limit


def test_continuation_is_bounded_by_its_token_maximum(pair: Pair) -> None:
    text, finish, usage, _ = _stream(pair, "Recite EMULATE_LONG_TEXT:5000")
    assert finish == "length" and usage is not None and usage["completion_tokens"] == 2000
    assert text == "".join(known_text(5000)[:2000])


def test_no_continuation_where_it_is_not_switched_on(pair: Pair) -> None:
    completion = pair.complete(
        model="@cf/meta/llama-3.2-3b-instruct", messages=[{"role": "user", "content": "Recite EMULATE_LONG_TEXT:700"}]
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 256
    assert completion.choices[0].finish_reason == "length"


# -- part by part, context window, embedding inputs ----------------------------------------------


def test_part_by_part_answers_each_paragraph_in_order(pair: Pair) -> None:
    text = "What is 1 + 1?\n\nWhat is 2 + 2?\n\n\nWhat is 30 * 3?"
    headers = {"x-workerprobe-split": "paragraphs"}
    payload = {
        "model": CHAT_MODEL,
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text}],
    }
    response = pair.http.post("/v1/chat/completions", json=payload, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "1 + 1 = 2.\n\n2 + 2 = 4.\n\n30 * 3 = 90."
    decoder, parts = Decoder(), []
    with pair.http.stream("POST", "/v1/chat/completions", json={**payload, "stream": True}, headers=headers) as r:
        for chunk in r.iter_raw():
            for event in decoder.feed(chunk):
                if event.data != "[DONE]":
                    choices = httpx.Response(200, content=event.data).json()["choices"]
                    parts.extend(c["delta"].get("content") or "" for c in choices)
    assert "".join(parts) == "1 + 1 = 2.\n\n2 + 2 = 4.\n\n30 * 3 = 90."


def test_part_by_part_needs_a_valid_plan(pair: Pair) -> None:
    response = pair.chat("One\n\nTwo", headers={"x-workerprobe-split": "sentences"})
    assert response.status_code == 400
    assert "x-workerprobe-split" in response.json()["error"]["message"]


def test_prompt_over_the_context_window_is_a_400_with_the_counts(pair: Pair) -> None:
    big = pair.chat("word " * 25_000, model="@cf/meta/llama-3.3-70b-instruct-fp8-fast")
    assert big.status_code == 400
    error = big.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length is 24000 tokens" in error["message"] and "25" in error["message"]
    asked = pair.chat("Hi", model="@cf/meta/llama-3.3-70b-instruct-fp8-fast", max_tokens=24_000)
    assert asked.status_code == 400 and "in the completion" in asked.json()["error"]["message"]


def test_a_token_limit_past_64_bits_is_over_the_window_not_a_wrong_type(pair: Pair) -> None:
    # JSON has no bound on integers; one past 64 bits asks for more than any window.
    huge = pair.chat("Hi", model="@cf/meta/llama-3.3-70b-instruct-fp8-fast", max_completion_tokens=10**36)
    assert huge.status_code == 400 and huge.json()["error"]["code"] == "context_length_exceeded", huge.text
    unknown = pair.chat("Hi", model="no-such-model", max_tokens=10**36)
    assert unknown.status_code == 404, unknown.text


def test_long_embedding_input_is_a_400_unless_truncation_is_asked_for(pair: Pair) -> None:
    long_text = " ".join(f"word{i % 50}" for i in range(700))
    refused = pair.http.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": ["short", long_text]})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "input" and "Input 1 has" in error["message"] and "at most 512" in error["message"]
    truncated = pair.http.post(
        "/v1/embeddings",
        json={"model": EMBEDDING_MODEL, "input": [long_text]},
        headers={"x-workerprobe-truncate": "true"},
    )
    assert truncated.status_code == 200, truncated.text
    first_512 = "".join(tokens.split(long_text)[:512])
    direct = pair.http.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": [first_512]})
    assert truncated.json()["data"][0]["embedding"] == direct.json()["data"][0]["embedding"]


# -- cache ---------------------------------------------------------------------------------------


def test_deterministic_requests_are_cached(pair: Pair) -> None:
    calls = pair.upstream_calls()
    first = pair.chat("Tell me about harbours", temperature=0)
    second = pair.chat("Tell me about harbours", temperature=0)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.json()["choices"][0]["message"] == second.json()["choices"][0]["message"]
    assert first.json()["usage"] == second.json()["usage"]
    assert pair.upstream_calls() == calls + 1  # the hit cost no upstream call, so no neurons
    assert pair.metric("workerprobe_cache_neurons_saved_total", model=CHAT_MODEL) > 0
    text, finish, usage, headers = _stream(pair, "Tell me about harbours", temperature=0)
    assert headers["x-cache"] == "HIT"  # replayed as a stream
    assert text == first.json()["choices"][0]["message"]["content"] and usage == first.json()["usage"]
    assert pair.upstream_calls() == calls + 1


def test_no_cache_bypasses_and_sampled_requests_are_not_cached(pair: Pair) -> None:
    pair.chat("Tell me about bridges", seed=7)
    again = pair.chat("Tell me about bridges", seed=7, headers={"Cache-Control": "no-cache"})
    assert again.headers["x-cache"] == "MISS"
    sampled = pair.chat("Tell me about bridges", temperature=0.7)
    assert "x-cache" not in sampled.headers


# -- budgets and rate limits ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pair, str]]:
    database = str(tmp_path_factory.mktemp("budget") / "gateway.sqlite3")
    created = subprocess.run(
        [sys.executable, "-m", "workerprobe.cli", "api-key", "create", "--name", "second"],
        env={**os.environ, "WORKERPROBE_GATEWAY_DATABASE": database},
        capture_output=True,
        text=True,
        check=True,
    )
    second_key = created.stdout.split()[1]
    with serve(["emulator"], env={"CF_API_TOKEN": UPSTREAM_TOKEN}) as emulator:
        env = gateway_env(
            emulator.url,
            api_key=KEY,
            token=UPSTREAM_TOKEN,
            database=database,
            account="budget-tests",
            daily_neurons="6",
            key_daily_neurons="2",
            key_rate_limit="30/minute",
        )
        with serve(["gateway"], env=env) as gateway:
            with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
                yield Pair(gateway.url, emulator.url, http, database), second_key


def _spend_until_refused(pair: Pair, key: str, limit: int = 29) -> tuple[int, httpx.Response]:
    for n in range(1, limit + 1):
        response = pair.chat("Write a long essay about rivers", key=key, max_tokens=200)
        if response.status_code != 200:
            return n, response
        assert float(response.headers["x-workerprobe-neurons-remaining"]) >= 0
    raise AssertionError("the budget never refused")


def test_key_budget_refuses_before_the_upstream_and_total_budget_too(budgeted: tuple[Pair, str]) -> None:
    pair, second = budgeted
    served, refused = _spend_until_refused(pair, KEY)
    assert served > 1
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "insufficient_quota"
    assert refused.headers["x-should-retry"] == "false"
    calls = pair.upstream_calls()
    assert pair.chat("What is 1 + 1?").status_code == 429
    assert pair.upstream_calls() == calls  # refused by the gateway: the upstream never saw it
    # The second key has its own budget, until the total (6 neurons) is spent.
    _, refused_total = _spend_until_refused(pair, second)
    assert refused_total.status_code == 429
    remaining = pair.metric("workerprobe_budget_remaining_neurons", budget="total")
    assert remaining < 6


def test_key_rate_limit(budgeted: tuple[Pair, str]) -> None:
    pair, _ = budgeted
    # Requests the budget refuses still count: the limit is on requests.
    statuses = [pair.http.get("/v1/models").status_code for _ in range(40)]
    assert 429 in statuses
    limited = pair.http.get("/v1/models")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("redis", [False, True])
async def test_key_rate_limiter_in_memory_and_in_redis(redis: bool) -> None:
    import uuid

    from workerprobe.gateway.errors import RateLimited
    from workerprobe.gateway.freeplan.budget import KeyRateLimiter

    url = "redis://127.0.0.1:6379/0" if redis else None
    limiter = KeyRateLimiter("3/minute", url, prefix=f"wp-test-{uuid.uuid4().hex}:")
    for _ in range(3):
        await limiter.hit("key_a")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("key_a")
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    await limiter.hit("key_b")  # each key has its own window
    await limiter.close()
