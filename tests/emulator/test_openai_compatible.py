"""Cloudflare's own OpenAI-compatible endpoints (/ai/v1) and the models search."""

from __future__ import annotations

import json

from tests.emulator.conftest import TEXT_MODEL, TOKEN, Emulator, error_of, running
from workerprobe.sse import Decoder


def test_v1_chat_completion(emulator: Emulator) -> None:
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "What is 6 / 3?"}]}
    response = emulator.http.post(emulator.path("a", "v1/chat/completions"), json=body)
    completion = response.json()
    assert completion["object"] == "chat.completion" and completion["model"] == TEXT_MODEL
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "6 / 3 = 2."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert completion["usage"]["completion_tokens"] == 6


def test_v1_stream_reports_finish_reason_only_on_the_usage_chunk(emulator: Emulator) -> None:
    body = {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": "Write a long story"}],
        "max_tokens": 12,
        "stream": True,
    }
    decoder = Decoder()
    events = []
    with emulator.http.stream("POST", emulator.path("a", "v1/chat/completions"), json=body) as r:
        for chunk in r.iter_raw():
            events.extend(decoder.feed(chunk))
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert all(c["choices"][0]["index"] == 0 for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["length"]
    assert "usage" in chunks[-1] and chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()


def test_v1_errors_keep_the_cloudflare_envelope(emulator: Emulator) -> None:
    body = {"model": "@cf/nope/nope", "messages": [{"role": "user", "content": "hi"}]}
    assert error_of(emulator.http.post(emulator.path("a", "v1/chat/completions"), json=body))[:2] == (400, 5007)
    body = {"model": "@cf/baai/bge-base-en-v1.5", "messages": [{"role": "user", "content": "hi"}]}
    assert error_of(emulator.http.post(emulator.path("a", "v1/chat/completions"), json=body))[:2] == (400, 5007)


def test_v1_embeddings(emulator: Emulator) -> None:
    body = {"model": "@cf/baai/bge-large-en-v1.5", "input": ["I love matcha", "tea"]}
    result = emulator.http.post(emulator.path("a", "v1/embeddings"), json=body).json()
    assert result["object"] == "list" and result["model"] == "@cf/baai/bge-large-en-v1.5"
    assert [d["index"] for d in result["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 1024 for d in result["data"])
    assert result["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_v1_models_is_405(emulator: Emulator) -> None:
    assert error_of(emulator.http.get(emulator.path("a", "v1/models"))) == (
        405,
        7001,
        "GET not supported for requested URI.",
    )


def test_models_search_shape_and_filters(emulator: Emulator) -> None:
    body = emulator.http.get(emulator.path("a", "models/search")).json()
    assert body["success"] is True
    names = [m["name"] for m in body["result"]]
    assert "@cf/meta/llama-3.1-8b-instruct-fast" in names
    assert "@cf/meta/llama-3-8b-instruct" not in names  # retired models are gone
    info = body["result_info"]
    assert info["count"] == info["total_count"] == len(names)
    bge = next(m for m in body["result"] if m["name"] == "@cf/baai/bge-base-en-v1.5")
    assert bge["id"] == "429b9e8b-d99e-44de-91ad-706cf8183658" and bge["source"] == 1
    assert bge["task"]["name"] == "Text Embeddings"
    props = {p["property_id"]: p["value"] for p in bge["properties"]}
    assert props["output_dimensions"] == "768" and props["max_input_tokens"] == "512"
    assert props["price"] == [{"unit": "per M input tokens", "price": 0.067, "currency": "USD"}]

    embeddings = emulator.http.get(emulator.path("a", "models/search"), params={"task": "Text Embeddings"}).json()
    assert {m["task"]["name"] for m in embeddings["result"]} == {"Text Embeddings"}
    llama = emulator.http.get(emulator.path("a", "models/search"), params={"search": "llama-3.2"}).json()
    assert sorted(m["name"] for m in llama["result"]) == [
        "@cf/meta/llama-3.2-1b-instruct",
        "@cf/meta/llama-3.2-3b-instruct",
    ]
    # The live API ignores per_page.
    paged = emulator.http.get(emulator.path("a", "models/search"), params={"per_page": 2}).json()
    assert len(paged["result"]) == len(names)


def test_models_search_needs_auth(emulator: Emulator) -> None:
    import httpx

    assert error_of(httpx.get(emulator.url + emulator.path("a", "models/search")))[:2] == (401, 10000)


def test_text_parts_are_refused_unless_the_setting_joins_them() -> None:
    """The live API's text models take string content (5006 on an array); `text_parts` joins
    OpenAI text parts for clients that always send them."""
    part = {"type": "text", "text": "What is 6 / 3?"}
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": [part]}]}
    with running() as strict:
        refused = strict.http.post(strict.path("a", "v1/chat/completions"), json=body)
        status, code, _ = error_of(refused)
        assert status == 400 and code == 5006
    with running(WORKERPROBE_EMULATOR_TEXT_PARTS="true") as lenient:
        answered = lenient.http.post(lenient.path("a", "v1/chat/completions"), json=body)
        assert answered.status_code == 200, answered.text
        assert answered.json()["choices"][0]["message"]["content"] == "6 / 3 = 2."


def test_trace_all_keeps_the_servers_clock_for_calls_without_an_id() -> None:
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "Write a long story"}], "max_tokens": 5}
    for setting, traced in (("false", set()), ("true", {"anon-1"})):
        with running(WORKERPROBE_EMULATOR_TRACE_ALL=setting) as emulator:
            with emulator.http.stream(
                "POST", emulator.path("a", "v1/chat/completions"), json={**body, "stream": True}
            ) as response:
                assert response.status_code == 200
                response.read()
            traces = emulator.http.get("/__emulator/trace").json()
            assert set(traces) == traced
            for trace in traces.values():
                assert len(trace["tokens"]) == 5 and trace["tokens"][0] >= trace["arrived"]


GPT_OSS = "@cf/openai/gpt-oss-20b"


def test_v1_responses_answers_gpt_oss_with_a_response_object(emulator: Emulator) -> None:
    """Through the official SDK, as Cloudflare's docs call it (`openai.responses.create`)."""
    import openai

    client = openai.OpenAI(base_url=emulator.url + emulator.path("a", "v1"), api_key=TOKEN, max_retries=0)
    response = client.responses.create(model=GPT_OSS, instructions="Be brief.", input="What is 6 / 3?")
    assert response.object == "response" and response.status == "completed" and response.model == GPT_OSS
    assert [o.type for o in response.output] == ["reasoning", "message"]
    assert response.output_text == "6 / 3 = 2."
    assert response.usage is not None and response.usage.output_tokens == 6
    assert response.usage.total_tokens == response.usage.input_tokens + 6
    cut = client.responses.create(model=GPT_OSS, input="Write a very long story about rivers", max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens" and cut.usage is not None
    assert cut.usage.output_tokens == 16


def test_v1_responses_streamed_is_answered_whole_and_nothing_is_stored(emulator: Emulator) -> None:
    """Assumed until a source says (emulator/responses.py): `stream: true` gets the JSON response,
    `previous_response_id` is a 400 / 5006, another model is a 400 / 5006."""
    url = emulator.path("a", "v1/responses")
    streamed = emulator.http.post(url, json={"model": GPT_OSS, "input": "Hi.", "stream": True})
    assert streamed.headers["content-type"].startswith("application/json") and streamed.json()["object"] == "response"
    chained = {"model": GPT_OSS, "input": "Hi.", "previous_response_id": "resp_1"}
    assert error_of(emulator.http.post(url, json=chained))[:2] == (400, 5006)
    assert error_of(emulator.http.post(url, json={"model": TEXT_MODEL, "input": "Hi."}))[:2] == (400, 5006)
    assert error_of(emulator.http.post(url, json={"model": "@cf/nope/nope", "input": "Hi."}))[:2] == (400, 5007)
