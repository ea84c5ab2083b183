"""The defects imposed from outside the gateway: `DefectsMiddleware` rewrites requests and
responses the way the buggy gateway would have produced them (the outermost layer)."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DefectsMiddleware"]


_ASSISTANT = re.compile(r"/v1/assistants/[^/]+")


def _rewrite_json(body: bytes, change: Any) -> bytes:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    return orjson.dumps(change(data))


class DefectsMiddleware:
    """Imposes the switched-on defects on requests and responses (outermost layer)."""

    def __init__(self, app: ASGIApp, defects: frozenset[str], api_key: str | None) -> None:
        self.app = app
        self.on = defects
        self.api_key = api_key
        self.deleted: dict[str, bytes] = {}  # deleted_still_retrievable: last body seen per id
        self.seen: dict[str, bytes] = {}
        self.nulled: set[str] = set()  # modify_stores_null: assistants whose tools were set to null

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.on:
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        on = self.on
        if "models_skip_auth" in on and path == "/v1/models" and self.api_key:
            # As if this one route had been left out of the auth check: any caller gets in.
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            scope = {**scope, "headers": [*headers, (b"authorization", f"Bearer {self.api_key}".encode())]}
        if "list_ignores_limit" in on and method == "GET":
            query = b"&".join(p for p in scope["query_string"].split(b"&") if not p.startswith(b"limit="))
            scope = {**scope, "query_string": query}
        if "unknown_method_501" in on and method not in ("GET", "POST", "DELETE", "HEAD", "OPTIONS"):
            await _answer(send, 501, b"Not Implemented", b"text/plain")  # as workerd answers QUERY
            return
        if "catalogue_page_500" in on and path == "/models/search":
            await _answer(send, 500, b"<html><body>Error 1101</body></html>", b"text/html")  # no SDK call goes there
            return
        if "get_body_500" in on and method == "GET" and _has_body(scope):
            await _answer(send, 500, b"Internal Server Error", b"text/plain")  # as a local runtime does
            return
        if "wrong_method_404" in on and (allowed := _methods(path)) and method not in allowed:
            said = {"error": {"message": f"Invalid URL ({method} {path})", "type": "invalid_request_error",
                              "param": None, "code": None}}  # fmt: skip
            await _answer(send, 404, orjson.dumps(said))
            return
        if "model_retrieve_404" in on and method == "GET" and path.startswith("/v1/models/"):
            said = {"error": {"message": f"The model `{path[11:]}` does not exist", "type": "invalid_request_error",
                              "param": None, "code": "model_not_found"}}  # fmt: skip
            await _answer(send, 404, orjson.dumps(said))
            return
        receive = await self._request(scope, receive)
        if "deleted_still_retrievable" in on and method == "GET" and path in self.deleted:
            await _answer(send, 200, self.deleted[path])
            return
        await self.app(scope, receive, self._sender(scope, send))

    async def _request(self, scope: Scope, receive: Receive) -> Receive:
        on = self.on
        wants = {
            "temperature_zero_remapped",
            "max_tokens_dropped",
            "malformed_json_500",
            "stop_ignored",
            "both_limits_500",
            "max_completion_tokens_ignored",
            "modify_stores_null",
            "content_parts_500",
            "previous_response_ignored",
            "store_false_stored",
            "response_instructions_dropped",
        } & on
        if not wants or scope["method"] != "POST":
            return receive
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if "malformed_json_500" in on:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError:
                scope["workerprobe.defect_500"] = True
        if scope["path"] == "/v1/chat/completions":

            def change(data: Any) -> Any:
                if isinstance(data, dict):
                    if "temperature_zero_remapped" in on and data.get("temperature") == 0:
                        data["temperature"] = 0.6
                    if "max_tokens_dropped" in on:
                        data.pop("max_tokens", None)
                        data.pop("max_completion_tokens", None)
                    if "stop_ignored" in on:
                        data.pop("stop", None)
                    if "max_completion_tokens_ignored" in on:
                        data.pop("max_completion_tokens", None)
                    if "both_limits_500" in on and "max_tokens" in data and "max_completion_tokens" in data:
                        scope["workerprobe.defect_500"] = True
                    messages = data.get("messages")
                    parts = isinstance(messages, list) and any(
                        isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages
                    )
                    if "content_parts_500" in on and parts:
                        scope["workerprobe.defect_500"] = True
                return data

            body = _rewrite_json(body, change)
        if scope["path"] == "/v1/responses":

            def dropped(data: Any) -> Any:
                if isinstance(data, dict):
                    if "previous_response_ignored" in on:
                        data.pop("previous_response_id", None)
                    if "store_false_stored" in on and data.get("store") is False:
                        data.pop("store")
                    if "response_instructions_dropped" in on:
                        data.pop("instructions", None)
                return data

            body = _rewrite_json(body, dropped)
        if "modify_stores_null" in on and _ASSISTANT.fullmatch(scope["path"]):

            def nulled(data: Any) -> Any:
                if isinstance(data, dict) and "tools" in data and data["tools"] is None:
                    del data["tools"]  # the gateway refuses null; the defective one stored it
                    self.nulled.add(scope["path"].rsplit("/", 1)[1])
                return data

            body = _rewrite_json(body, nulled)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    def _sender(self, scope: Scope, send: Send) -> Send:
        on = self.on
        path, method = scope["path"], scope["method"]
        state: dict[str, Any] = {"start": None, "body": b"", "stream": False}

        async def defect_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                ctype = dict(headers).get(b"content-type", b"")
                state["stream"] = ctype.startswith(b"text/event-stream")
                status = message["status"]
                if scope.get("workerprobe.defect_500"):
                    status = 500
                if (
                    "create_201" in on
                    and method == "POST"
                    and status == 200
                    and path in ("/v1/assistants", "/v1/threads")
                ):
                    status = 201
                if "retry_after_missing" in on and status == 429:
                    headers = [(k, v) for k, v in headers if k.lower() != b"retry-after"]
                state["start"] = {**message, "status": status, "headers": headers}
                if state["stream"]:
                    await send(state["start"])
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            if state["stream"] and path == "/v1/responses":
                await send({**message, "body": self._response_event(message.get("body", b""), state)})
                return
            if state["stream"]:
                await send({**message, "body": self._stream_chunk(message.get("body", b""))})
                return
            state["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            start, body = state["start"], self._body(scope, state["start"]["status"], state["body"])
            if "error_as_200" in on and path == "/v1/chat/completions" and start["status"] >= 400:
                start = {**start, "status": 200}
            if "quota_as_500" in on and start["status"] == 429 and b"insufficient_quota" in body:
                start = {**start, "status": 500}
            start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"] + [
                (b"content-length", str(len(body)).encode())
            ]
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return defect_send

    def _stream_chunk(self, chunk: bytes) -> bytes:
        on = self.on
        if "chunk_without_object" in on:
            chunk = chunk.replace(b'"object":"chat.completion.chunk",', b"")
        if "finish_reason_eos" in on:
            chunk = chunk.replace(b'"finish_reason":"stop"', b'"finish_reason":"eos_token"')
        if "cost_chunk" in on and b"data: [DONE]" in chunk:
            chunk = chunk.replace(b"data: [DONE]", b'data: {"choices":[],"cost":"0.00002"}\n\ndata: [DONE]')
        if "stream_without_done" in on:
            chunk = chunk.replace(b"data: [DONE]\n\n", b"")
        if "no_usage_chunk" in on and b'"choices":[]' in chunk and b'"usage"' in chunk:
            return b""
        if "stop_at_limit" in on:
            chunk = chunk.replace(b'"finish_reason":"length"', b'"finish_reason":"stop"')
        return chunk

    def _response_event(self, chunk: bytes, state: dict[str, Any]) -> bytes:
        """One event of a streamed response (the gateway sends each event as one body message)."""
        on = self.on
        terminal = b'"type":"response.completed"' in chunk or b'"type":"response.incomplete"' in chunk
        if "response_no_terminal" in on and terminal:
            return b""
        if "response_deltas_lost" in on and b'"type":"response.output_text.delta"' in chunk:
            state["deltas"] = state.get("deltas", 0) + 1
            if state["deltas"] % 2 == 0:
                return b""
        if "response_id_per_event" in on and b'"type":"response.created"' in chunk:
            chunk = chunk.replace(b'"id":"resp_', b'"id":"resp_created_', 1)
        if "response_silent_truncation" in on:
            chunk = _completed(chunk)
        if "response_usage_chat_fields" in on and b'"usage":{' in chunk:
            chunk = _chat_usage(chunk)
        if "response_stream_done" in on and terminal:
            chunk += b"data: [DONE]\n\n"
        return chunk

    def _body(self, scope: Scope, status: int, body: bytes) -> bytes:
        on = self.on
        path, method = scope["path"], scope["method"]
        if "modify_stores_null" in on and self.nulled and status == 200 and path.startswith("/v1/assistants"):

            def read_back(d: Any) -> Any:
                for item in d.get("data", [d]) if isinstance(d, dict) else []:
                    if isinstance(item, dict) and item.get("id") in self.nulled:
                        item["tools"] = None
                return d

            body = _rewrite_json(body, read_back)
        if "error_without_type" in on and status >= 400:
            body = _rewrite_json(body, lambda d: {"error": {"message": d.get("error", {}).get("message", "")}})
        if "error_as_string" in on and status == 401:
            body = b'{"error":"Unauthorized"}'
        if "base64_ignored" in on and path == "/v1/embeddings" and status == 200:

            def floats(d: dict[str, Any]) -> dict[str, Any]:
                for item in d.get("data", []):
                    if isinstance(item.get("embedding"), str):
                        raw = base64.b64decode(item["embedding"])
                        item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
                return d

            body = _rewrite_json(body, floats)
        if path == "/v1/chat/completions" and status == 200:

            def chat(d: dict[str, Any]) -> dict[str, Any]:
                if "completion_without_object" in on:
                    d.pop("object", None)
                for choice in d.get("choices", []):
                    if "choices_without_index" in on:
                        choice.pop("index", None)
                    if "finish_reason_eos" in on and choice.get("finish_reason") == "stop":
                        choice["finish_reason"] = "eos_token"
                    if "tool_arguments_object" in on:
                        for call in (choice.get("message") or {}).get("tool_calls") or []:
                            try:
                                call["function"]["arguments"] = orjson.loads(call["function"]["arguments"])
                            except (KeyError, TypeError, orjson.JSONDecodeError):
                                pass
                    if "stop_at_limit" in on and choice.get("finish_reason") == "length":
                        choice["finish_reason"] = "stop"
                if "usage_total_wrong" in on and "usage" in d:
                    d["usage"]["total_tokens"] = d["usage"]["prompt_tokens"]
                return d

            body = _rewrite_json(body, chat)
        if path.startswith("/v1/responses") and status == 200:
            if "response_silent_truncation" in on:
                body = _completed(body)
            if "response_usage_chat_fields" in on:
                body = _chat_usage(body)
        if "embeddings_out_of_order" in on and path == "/v1/embeddings" and status == 200:

            def reverse(d: dict[str, Any]) -> dict[str, Any]:
                items = d.get("data", [])
                vectors = [item.get("embedding") for item in items][::-1]
                for item, vector in zip(items, vectors, strict=True):
                    item["embedding"] = vector
                return d

            body = _rewrite_json(body, reverse)
        if "base64_big_endian" in on and path == "/v1/embeddings" and status == 200:

            def swap(d: dict[str, Any]) -> dict[str, Any]:
                for item in d.get("data", []):
                    if isinstance(item.get("embedding"), str):
                        raw = base64.b64decode(item["embedding"])
                        values = struct.unpack(f"<{len(raw) // 4}f", raw)
                        item["embedding"] = base64.b64encode(struct.pack(f">{len(values)}f", *values)).decode()
                return d

            body = _rewrite_json(body, swap)
        if "run_as_chat_completion" in on and method == "POST" and path.endswith("/runs") and status == 200:
            body = orjson.dumps(
                {
                    "id": "chatcmpl-x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
                }
            )
        if "run_reply_not_stored" in on and method == "GET" and path.endswith("/messages") and status == 200:
            body = _rewrite_json(
                body, lambda d: {**d, "data": [m for m in d.get("data", []) if m.get("role") != "assistant"]}
            )
        if "deleted_still_retrievable" in on and path.startswith("/v1/assistants/") and status == 200:
            if method == "GET":
                self.seen[path] = body
            elif method == "DELETE" and path in self.seen:
                self.deleted[path] = self.seen[path]
        return body


def _completed(raw: bytes) -> bytes:
    """A cut response said to be whole: status completed, no incomplete_details (the event's name too)."""
    raw = raw.replace(b'"incomplete_details":{"reason":"max_output_tokens"}', b'"incomplete_details":null')
    raw = raw.replace(b'"status":"incomplete"', b'"status":"completed"')
    return raw.replace(b"response.incomplete", b"response.completed")


_RESPONSE_USAGE = re.compile(rb'"usage":\{"input_tokens":(\d+),.*?"output_tokens":(\d+),.*?"total_tokens":(\d+)\}')


def _chat_usage(raw: bytes) -> bytes:
    """A response's usage in chat's field names."""
    return _RESPONSE_USAGE.sub(
        lambda m: b'"usage":{"prompt_tokens":%s,"completion_tokens":%s,"total_tokens":%s}' % m.groups(), raw
    )


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return int(headers.get(b"content-length", b"0") or 0) > 0 or b"transfer-encoding" in headers


def _methods(path: str) -> set[str]:
    """The methods the spec gives the path (none: a path the spec does not have)."""
    from workerprobe.suite import operations

    return {op.method for op in operations.load() if re.fullmatch(re.sub(r"{[^/]+}", "[^/]+", op.path), path)}


async def _answer(send: Send, status: int, body: bytes, kind: bytes = b"application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
