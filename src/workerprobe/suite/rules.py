"""The OpenAI rules, each registered once with its level, where it applies and the client
behaviour that justifies the level (the checks in `checks.py` hold them)."""

from __future__ import annotations

from workerprobe.suite import registry as r

__all__ = [
    "ANSWER_BOUNDED",
    "ERROR_ENVELOPE",
    "ERROR_FIELDS",
    "ERROR_TYPE",
    "LIST_LIMIT",
    "MAX_TOKENS",
    "N_HONOURED",
    "QUOTA_CODE",
    "RESPONSE_LIMIT",
    "RESPONSE_SILENT_TRUNCATION",
    "RESPONSE_STREAM_DONE",
    "RESPONSE_STREAM_EVENTS",
    "RESPONSE_STREAM_IDENTITY",
    "RESPONSE_STREAM_ITEM_IDS",
    "RESPONSE_STREAM_SEQUENCE",
    "RESPONSE_STREAM_TEXT",
    "RESPONSE_USAGE_ARITHMETIC",
    "RUN_STREAM",
    "SILENT_TRUNCATION",
    "STOP_HONOURED",
    "STREAM_CHUNK_FIELDS",
    "STREAM_DONE",
    "STREAM_ERROR_LAST",
    "STREAM_FINISH",
    "STREAM_ID",
    "STREAM_JSON",
    "STREAM_ROLE",
    "STREAM_USAGE",
    "SUCCESS_NOT_ERROR",
    "USAGE_ARITHMETIC",
]

ANSWER_BOUNDED = r.rule(
    "openai_answer_bounded",
    "MUST",
    "transport",  # held by the suite's bounded transports (suite/bounds.py), on every answer
    "an answer larger than the suite's cap (64 MB) or not complete within its deadline (60 s): the SDKs read a "
    "whole body and time out only between bytes, so a client runs out of memory or waits for ever",
    r.always,
    openai="answers are finite: a stream ends with [DONE] (API reference, Streaming); the SDK's default timeout "
    "is 600 s between bytes",
)
ERROR_ENVELOPE = r.rule(
    "openai_error_envelope",
    "MUST",
    "openai_errors",
    "without {'error': {'message': ...}} the SDK's exception has no message, type or code (e.code is None), "
    "so a client cannot tell a quota error from a rate limit or a bad parameter",
    r.is_error,
    openai='{"error": {"message", "type", "param", "code"}} on every error (API reference, Error codes; '
    "openai-python reads the body's error)",
)
ERROR_FIELDS = r.rule(
    "openai_error_fields",
    "SHOULD",
    "openai_errors",
    "the envelope lacks type, param or code; the SDK still raises the class its status maps to",
    r.is_error,
    openai="type, param and code on every error, null where they do not apply (openai/openai-openapi ErrorResponse)",
)
ERROR_TYPE = r.rule(
    "openai_error_type",
    "SHOULD",
    "openai_errors",
    "the error type disagrees with the status; the SDK picks the class by status, not by type",
    r.is_error,
    openai="400, 401 and 404 are invalid_request_error, 429 requests, tokens or insufficient_quota, 5xx "
    "server_error (API reference, Error codes)",
)
QUOTA_CODE = r.rule(
    "openai_quota_code",
    "MUST",
    "openai_errors",
    "a daily-quota 429 without code 'insufficient_quota' is retried by clients as a rate limit, "
    "for as long as the quota lasts",
    r.quota_error,
    openai="a spent quota is 429 insufficient_quota, which the SDKs do not retry as a rate limit (API "
    "reference, Error codes)",
)
SUCCESS_NOT_ERROR = r.rule(
    "openai_success_is_not_an_error",
    "MUST",
    "openai_success",
    "a 2xx whose body is an error object: the SDK returns an empty object and raises nothing",
    r.is_success,
    openai="a 2xx carries the object asked for, never an error (API reference)",
)
STREAM_DONE = r.rule(
    "openai_stream_done",
    "MUST",
    "openai_chat",
    "a stream must end with one data: [DONE]; clients that wait for it hang, a second one is read as a chunk",
    r.chat_stream,
    r.CHAT,
    openai="a chat stream ends with data: [DONE] (API reference, Streaming)",
)
STREAM_JSON = r.rule(
    "openai_stream_json",
    "MUST",
    "openai_chat",
    "every data line but [DONE] is a JSON object; the SDK raises on the first one that is not",
    r.chat_stream,
    r.CHAT,
    openai="every data line of a chat stream but [DONE] is a chat.completion.chunk object (API reference, Streaming)",
)
STREAM_ERROR_LAST = r.rule(
    "openai_stream_error_last",
    "MUST",
    "openai_chat",
    "the SDK raises at an error event: chunks after it are lost",
    r.chat_stream,
    r.CHAT,
    openai="an error during a stream is its last event (openai-python raises at it)",
)
STREAM_ROLE = r.rule(
    "openai_stream_role",
    "SHOULD",
    "openai_chat",
    "the first delta carries role 'assistant'; the SDK's accumulator falls back to it",
    r.chat_stream,
    r.CHAT,
    openai="the first chunk's delta has role assistant (API reference, chat.completion.chunk)",
)
STREAM_CHUNK_FIELDS = r.rule(
    "openai_stream_chunk_fields",
    "SHOULD",
    "openai_chat",
    "every chunk carries id, object 'chat.completion.chunk', created and model; the SDKs construct chunks "
    "without validation, stricter clients (AIPerf, Spring AI, Pydantic AI) drop or reject them",
    r.chat_stream,
    r.CHAT,
    openai="every chunk has id, object, created, model (API reference, chat.completion.chunk)",
)
STOP_HONOURED = r.rule(
    "openai_stop_honoured",
    "MUST",
    "openai_chat",
    "the text holds none of the `stop` sequences; otherwise the client silently gets text past the point "
    "where it asked generation to stop",
    r.chat_with_stop,
    r.CHAT,
    openai="generation stops before any stop sequence, which is not returned (API reference, Chat: stop)",
)
STREAM_ID = r.rule(
    "openai_stream_one_id",
    "SHOULD",
    "openai_chat",
    "one id for the whole stream; accumulators keyed by id split the answer",
    r.chat_stream,
    r.CHAT,
    openai="every chunk of a stream has the same id (API reference, chat.completion.chunk: id)",
)
STREAM_FINISH = r.rule(
    "openai_stream_finish_reason",
    "MUST",
    "openai_chat",
    "exactly one chunk per choice carries finish_reason; without it a client cannot tell a cut answer "
    "from a whole one (the stream helper's final completion says None)",
    r.chat_stream,
    r.CHAT,
    openai="each choice's last chunk carries its finish_reason (API reference, chat.completion.chunk)",
)
STREAM_USAGE = r.rule(
    "openai_stream_usage",
    "MUST",
    "openai_chat",
    "with stream_options.include_usage the last chunk is the usage chunk with choices: []; otherwise the "
    "SDK's stream.usage is silently None",
    r.wants_usage,
    r.CHAT,
    openai="with include_usage, a last chunk with usage and choices: [] (API reference, Chat: stream_options)",
)
USAGE_ARITHMETIC = r.rule(
    "openai_usage_arithmetic",
    "SHOULD",
    "openai_chat",
    "total_tokens = prompt_tokens + completion_tokens; clients that bill by total get it wrong",
    r.chat_any,
    r.CHAT,
    openai="total_tokens = prompt_tokens + completion_tokens (API reference, usage)",
)
N_HONOURED = r.rule(
    "openai_n_honoured",
    "MUST",
    "openai_chat",
    "n choices for n > 1; the SDK silently returns fewer answers than asked",
    r.chat_with_n,
    r.CHAT,
    openai="n choices for n (API reference, Chat: n)",
)
MAX_TOKENS = r.rule(
    "openai_max_tokens_honoured",
    "MUST",
    "openai_chat",
    "no more completion tokens than max_tokens; the client is billed and shown more than it allowed",
    r.chat_with_limit,
    r.CHAT,
    openai="no more completion tokens than max_tokens or max_completion_tokens (API reference, Chat)",
)
SILENT_TRUNCATION = r.rule(
    "openai_silent_truncation",
    "MUST",
    "openai_chat",
    "an answer cut at max_tokens says finish_reason 'length'; with 'stop' the client takes a cut answer "
    "for a whole one",
    r.chat_with_limit,
    r.CHAT,
    openai="an answer cut at its token limit has finish_reason length (API reference, Chat: finish_reason)",
)
RUN_STREAM = r.rule(
    "openai_run_stream",
    "MUST",
    "openai_runs",
    "a run stream starts with thread.run.created, carries JSON, reports a terminal status and ends with "
    "event: done; the SDK's AssistantEventHandler raises or never returns otherwise",
    r.run_stream,
    r.RUNS,
    openai="thread.run.created first, JSON events, a terminal status, then event: done (API reference, "
    "Assistants streaming)",
)
LIST_LIMIT = r.rule(
    "openai_list_limit",
    "MUST",
    "openai_lists",
    "a page holds at most `limit` objects (20 by default); a paginating client's cursor skips the rest",
    r.list_page,
    r.LISTS,
    openai="a page holds at most limit objects, 20 by default (API reference, list endpoints)",
)

# --- the Responses API: levels by what the SDKs do with each fault ------------------------------

RESPONSE_STREAM_EVENTS = r.rule(
    "openai_response_stream_events",
    "MUST",
    "openai_responses",
    "every data line is a JSON event with a type, and exactly one terminal event (response.completed, "
    ".incomplete or .failed) ends the stream; without it the Python SDK's stream helper raises "
    "RuntimeError (\"Didn't receive a response.completed event\") and the Node SDK's finalResponse() rejects",
    r.responses_stream,
    r.RESPONSES,
    openai="a streamed response is typed events ending with response.completed, .incomplete or .failed "
    "(API reference, Responses streaming events)",
)
RESPONSE_STREAM_IDENTITY = r.rule(
    "openai_response_stream_identity",
    "MUST",
    "openai_responses",
    "created, in_progress and the terminal event carry one response id, each output index is added once and "
    "before its deltas, and its done item has the added item's id; otherwise the Python SDK's stream helper "
    "raises RuntimeError (lifecycle identity changed, duplicate output index, conflicting identities)",
    r.responses_stream,
    r.RESPONSES,
    openai="one response id per stream; output_item.added before an item's deltas, output_item.done with the "
    "same item (API reference, Responses streaming events)",
)
RESPONSE_STREAM_TEXT = r.rule(
    "openai_response_stream_text",
    "MUST",
    "openai_responses",
    "the deltas of a message join to its output_text.done text and to the final response's output_text; "
    "otherwise what a streaming client showed is not what the response holds",
    r.responses_stream,
    r.RESPONSES,
    openai="output_text.done carries the full text the deltas built (API reference, Responses streaming events)",
)
RESPONSE_STREAM_SEQUENCE = r.rule(
    "openai_response_stream_sequence",
    "SHOULD",
    "openai_responses",
    "every event carries an increasing sequence_number; the SDKs pass it on without checking, clients that "
    "resume a stream (starting_after) or order events by it cannot",
    r.responses_stream,
    r.RESPONSES,
    openai="each streamed event has a sequence_number (API reference, Responses streaming events)",
)
RESPONSE_STREAM_ITEM_IDS = r.rule(
    "openai_response_stream_item_ids",
    "SHOULD",
    "openai_responses",
    "the item_id of deltas and done events is the id of the item added at that output index; the SDKs "
    "accumulate by output_index, clients keyed by item_id split or lose text",
    r.responses_stream,
    r.RESPONSES,
    openai="item_id names the output item the event belongs to (API reference, Responses streaming events)",
)
RESPONSE_STREAM_DONE = r.rule(
    "openai_response_stream_no_done",
    "SHOULD",
    "openai_responses",
    "a response stream has no data: [DONE]; both SDKs skip it, but a client that parses every event as a "
    "typed event (the Open Responses schema) rejects it",
    r.responses_stream,
    r.RESPONSES,
    openai="the terminal response.* event ends the stream; there is no [DONE] (API reference, Responses streaming)",
)
RESPONSE_LIMIT = r.rule(
    "openai_max_output_tokens_honoured",
    "MUST",
    "openai_responses",
    "no more output tokens than max_output_tokens; the client is billed and shown more than it allowed",
    r.responses_with_limit,
    r.RESPONSES,
    openai="max_output_tokens bounds the tokens generated (API reference, Responses: max_output_tokens)",
)
RESPONSE_SILENT_TRUNCATION = r.rule(
    "openai_response_silent_truncation",
    "MUST",
    "openai_responses",
    "an answer cut at max_output_tokens is status 'incomplete' with incomplete_details.reason "
    "'max_output_tokens'; with 'completed' the client takes a cut answer for a whole one",
    r.responses_with_limit,
    r.RESPONSES,
    openai="a response cut at its limit is incomplete, reason max_output_tokens (API reference, Responses: status)",
)
RESPONSE_USAGE_ARITHMETIC = r.rule(
    "openai_response_usage_arithmetic",
    "SHOULD",
    "openai_responses",
    "total_tokens = input_tokens + output_tokens; clients that bill by total get it wrong",
    r.responses_any,
    r.RESPONSES,
    openai="total_tokens = input_tokens + output_tokens (API reference, Responses: usage)",
)
