"""Seeded defects: each one a real class of gateway bug, switched on one at a time to prove that
the contract and scenario tests catch it (`make selftest`). They are test doubles, built into a
gateway through the app factory's seams (`workerprobe.gateway.app.Parts`): no production module
knows of them.

- most are imposed from outside by `DefectsMiddleware` (middleware.py);
- `split_events_lose_tokens` is an SSE decoder that takes each read as whole events;
- `run_instructions_dropped` is a run execution that never tells the model its instructions;
- `run_tools_dropped` is a run execution that never gives the model the run's tools (as this
  gateway did before its runs knew tools: the run "completes" with made-up text);
- `run_limits_ignored` is a run execution that sends the whole thread whatever the run's
  `truncation_strategy` and `max_prompt_tokens` say (as this gateway did before it read them).

`python -m workerprobe.suite.defects --defects '["create_201"]' --host H --port P` serves such a
gateway (its settings from the environment, as `workerprobe gateway` reads them).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.middleware import Middleware

from workerprobe.gateway.app import Parts
from workerprobe.gateway.assistants.context import Limits
from workerprobe.gateway.assistants.execution import RunExecution
from workerprobe.gateway.chat.generation import Message
from workerprobe.gateway.store.base import Document
from workerprobe.sse import Decoder, Event

__all__ = ["DEFECTS", "NOT_DEFECTS", "REPORTED", "SCOPES", "parts", "validate"]

DEFECTS: dict[str, str] = {
    "create_201": "creates answer 201 instead of 200",
    "catalogue_page_500": "the model catalogue page answers 500 (SHOULD: outside OpenAI's API, no SDK call goes there)",
    "error_without_type": "error bodies lack `type` and `code`",
    "malformed_json_500": "malformed JSON answers 500",
    "choices_without_index": "choices lack `index`",
    "stop_at_limit": 'finish_reason "stop" when the answer hit max_tokens',
    "stream_without_done": "streams end without data: [DONE]",
    "split_events_lose_tokens": "the upstream SSE decoder drops events split across reads",
    "no_usage_chunk": "no usage chunk despite stream_options.include_usage",
    "models_skip_auth": "GET /v1/models answers without a key",
    "deleted_still_retrievable": "a deleted assistant can still be retrieved",
    "list_ignores_limit": "lists ignore `limit`",
    "run_as_chat_completion": "creating a run answers with a chat completion",
    "run_instructions_dropped": "run instructions are never sent upstream",
    "run_tools_dropped": "a run's function tools, tool_choice and response_format never reach the model",
    "run_limits_ignored": "a run's truncation_strategy and max_prompt_tokens are ignored: the whole thread is sent",
    "run_reply_not_stored": "run replies are not stored in the thread",
    "temperature_zero_remapped": "temperature 0 becomes the upstream default (a `|| 0.6`)",
    "base64_big_endian": "base64 embeddings in big-endian byte order",
    "retry_after_missing": "429s without Retry-After",
    "quota_as_500": "the daily-quota error surfaces as a 500",
    "usage_total_wrong": "usage.total_tokens leaves out the completion",
    "max_tokens_dropped": "max_tokens is not forwarded upstream",
    "modify_stores_null": "an assistant's modify accepts `tools: null` and stores it: every read then has tools null",
    "content_parts_500": "chat messages whose content is a list of text parts answer 500",
    "embeddings_out_of_order": "a batch's embeddings come back with their vectors in reverse order, indices kept",
    "model_retrieve_404": "every model of the list answers 404 on GET /v1/models/{model}",
    # Taken from public bug reports of other OpenAI-compatible servers and gateways (REPORTED).
    "tool_arguments_object": "tool call arguments sent as a JSON object, not a string",
    "chunk_without_object": "stream chunks lack `object`",
    "cost_chunk": "a last stream chunk {choices: [], cost} without id, object, created or model",
    "stop_ignored": "`stop` is not honoured: the text runs on past the stop sequence",
    "finish_reason_eos": 'finish_reason "eos_token" instead of "stop"',
    "both_limits_500": "a request with both max_tokens and max_completion_tokens answers 500",
    "max_completion_tokens_ignored": "max_completion_tokens is ignored (only max_tokens is read)",
    "error_as_200": "chat errors answer 200 with the error object as the body",
    "error_as_string": 'authentication errors answer {"error": "Unauthorized"}',
    "base64_ignored": "encoding_format base64 is ignored: floats come back",
    "completion_without_object": "chat completions lack `object`",
    # The Responses API: bugs of gateways that bridge it to chat completions
    "response_stream_done": "a streamed response ends with data: [DONE] after its terminal event, as a chat stream",
    "response_no_terminal": "a streamed response ends after its last output item, without response.completed",
    "response_deltas_lost": "every other output_text.delta of a streamed response is lost",
    "response_id_per_event": "response.created carries another id than the rest of the stream (an id made per event)",
    "response_silent_truncation": "a response cut at max_output_tokens says status completed, no incomplete_details",
    "response_usage_chat_fields": "a response's usage in chat's fields (prompt_tokens, completion_tokens)",
    "previous_response_ignored": "previous_response_id is accepted and ignored: earlier turns never reach the model",
    "store_false_stored": "store: false is ignored: the response is stored and retrievable",
    "response_instructions_dropped": "a response's instructions never reach the model",
}

# Where each defect shows: a pytest `-k` expression over the suite's test ids (the families of the
# operations and scenarios it breaks), so that `make selftest` runs per defect only those tests.
# The run with no defect and the runs of NOT_DEFECTS (false alarms) run the whole suite, and so
# does a defect not listed here.
_CHAT = "chat or completions or behaviour or shapes"
_EMBEDDINGS = "embeddings or shapes"
_MODELS = "models or search"
_ASSISTANTS = "assistants or threads or runs or stateful"
_RESPONSES = "responses or conversations"
SCOPES: dict[str, str] = {
    **dict.fromkeys(
        (
            "choices_without_index", "stop_at_limit", "stream_without_done", "split_events_lose_tokens",
            "no_usage_chunk", "temperature_zero_remapped", "usage_total_wrong", "max_tokens_dropped",
            "content_parts_500", "tool_arguments_object", "chunk_without_object", "cost_chunk", "stop_ignored",
            "finish_reason_eos", "both_limits_500", "max_completion_tokens_ignored", "completion_without_object",
        ),
        _CHAT,
    ),
    "error_as_200": f"{_CHAT} or errors",
    # errors of every family: those of chat and the error scenarios show them
    **dict.fromkeys(("error_as_string", "error_without_type", "malformed_json_500"), f"{_CHAT} or errors"),
    **dict.fromkeys(("quota_as_500", "retry_after_missing"), "errors"),  # the 429 scenarios
    "list_ignores_limit": f"{_ASSISTANTS} or {_RESPONSES}",
    **dict.fromkeys(("base64_big_endian", "embeddings_out_of_order", "base64_ignored"), _EMBEDDINGS),
    **dict.fromkeys(("catalogue_page_500", "models_skip_auth", "model_retrieve_404"), _MODELS),
    **dict.fromkeys(
        (
            "create_201", "deleted_still_retrievable", "run_as_chat_completion", "run_reply_not_stored",
            "modify_stores_null",
        ),
        _ASSISTANTS,
    ),
    **dict.fromkeys(
        ("run_instructions_dropped", "run_tools_dropped", "run_limits_ignored"), f"{_ASSISTANTS} or behaviour"
    ),
    **dict.fromkeys(
        (
            "response_stream_done", "response_no_terminal", "response_deltas_lost", "response_id_per_event",
            "response_silent_truncation", "response_usage_chat_fields", "previous_response_ignored",
            "store_false_stored", "response_instructions_dropped",
        ),
        _RESPONSES,
    ),
}  # fmt: skip

# Not defects: what a Worker or its runtime may do that the suite must not report (each was once a
# false alarm). With each switched on, no test may fail that fails without it.
NOT_DEFECTS: dict[str, str] = {
    "unknown_method_501": "a method no client sends (QUERY, TRACE) answered 501 by the runtime, before the Worker",
    "get_body_500": "a GET sent with a body answered 500 by the runtime (no client sends one)",
    "wrong_method_404": "a method the path does not have answered 404 in the OpenAI envelope, as OpenAI does",
}

# Where each defect taken from another project was reported.
REPORTED: dict[str, str] = {
    "tool_arguments_object": "ggml-org/llama.cpp#20198 (llama-server returned tool arguments as an object)",
    "chunk_without_object": "NVIDIA/TensorRT-Edge-LLM#93 (SSE chunks missing object; AIPerf lost 50 of 50 records)",
    "cost_chunk": "anomalyco/opencode#39606 (oa-compat cost chunk omits id, object, created and model)",
    "stop_ignored": "modular/max#292 (generation does not stop at `stop`), huggingface/text-generation-inference#1724",
    "finish_reason_eos": "huggingface/text-generation-inference#1724 (finish_reason 'eos_token')",
    "both_limits_500": "vllm-project/guidellm#308 (both limits sent through a proxy gave a 500)",
    "max_completion_tokens_ignored": "0xzr/freellmpool#93 (the proxy ignored max_completion_tokens)",
    "error_as_200": "kubernetes-sigs/inference-perf#713 (a 200 whose body is an error)",
    "error_as_string": 'vLLM api_server\'s {"error": "Unauthorized"} (the counter-example in STYLE.md)',
    "base64_ignored": "runpod-workers/worker-infinity-embedding#30, sgl-project/sglang#28803 (base64 ignored)",
    "completion_without_object": "caozhiyuan/copilot-api#247 (missing object: chat.completion)",
}


def validate(names: list[str]) -> frozenset[str]:
    unknown = sorted(set(names) - set(DEFECTS) - set(NOT_DEFECTS))
    if unknown:
        raise ValueError(f"unknown defects {unknown}; known: {sorted(DEFECTS)} and {sorted(NOT_DEFECTS)}")
    return frozenset(names)


class TrustingDecoder(Decoder):
    """`split_events_lose_tokens`: takes each read as whole events, so an event split across two
    reads is lost (the bug the incremental `workerprobe.sse.Decoder` exists to avoid)."""

    def feed(self, chunk: bytes) -> list[Event]:
        out = []
        for block in chunk.split(b"\n\n"):
            if block.startswith(b"data: "):
                data = block[6:].decode(errors="replace")
                if data == "[DONE]" or _is_json(data):
                    out.append(Event(data))
        return out

    def close(self) -> list[Event]:
        return []


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


class InstructionsDroppedRuns(RunExecution):
    """`run_instructions_dropped`: the run's and the assistant's instructions never reach the model."""

    def instructions(self, run: Document) -> str:
        return ""


class ToolsDroppedRuns(RunExecution):
    """`run_tools_dropped`: the run's tools, tool choice and response format never reach the model."""

    def tool_options(self, run: Document, answered: bool = False) -> dict[str, Any]:
        return {}


class LimitsIgnoredRuns(RunExecution):
    """`run_limits_ignored`: the whole thread goes to the model, whatever the run's limits say."""

    def fit(
        self,
        run: Document,
        head: list[Message],
        thread: list[Message],
        tail: list[Message],
        left: Limits,
        window: int | None,
    ) -> list[Message]:
        return [*head, *thread, *tail]


_RUNS = {
    "run_instructions_dropped": InstructionsDroppedRuns,
    "run_tools_dropped": ToolsDroppedRuns,
    "run_limits_ignored": LimitsIgnoredRuns,
}


def parts(defects: frozenset[str], api_key: str | None) -> Parts:
    """The seams of a gateway with these defects."""
    outside = defects - {"split_events_lose_tokens", *_RUNS}
    from workerprobe.suite.defects.middleware import DefectsMiddleware

    chosen = tuple(cls for name, cls in _RUNS.items() if name in defects)
    execution: type[RunExecution] = (
        type("DefectiveExecution", chosen, {}) if len(chosen) > 1 else (chosen or (RunExecution,))[0]
    )
    return Parts(
        decoder=TrustingDecoder if "split_events_lose_tokens" in defects else Decoder,
        execution=execution,
        middleware=(Middleware(DefectsMiddleware, defects=outside, api_key=api_key),) if outside else (),
    )
