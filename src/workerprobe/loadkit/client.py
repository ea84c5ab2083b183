"""The LLM client of the load profiles: one chat completion or embedding, measured (TTFT, TPOT,
ITL, end to end, truncation), classified by cause when it fails, held and settled against the
run's neuron budget, and reported as a Locust `events.request` with the LLM figures in its
`context` (`llm_sample` or `llm_cause`). Users only describe traffic; listeners collect.

The measured calls go past Locust's HttpSession, which would time a stream to its headers: the
request event carries the end-to-end time instead.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from workerprobe import sse
from workerprobe.loadkit.causes import Cause, classify
from workerprobe.loadkit.timing import Sample, StreamMeter, buffered
from workerprobe.suite import operations
from workerprobe.suite.budget import Budget, Exhausted, Hold
from workerprobe.suite.operations import Operation

__all__ = ["CHAT", "EMBEDDINGS", "RESPONSES", "LLMClient", "Result", "json_or_none"]


@dataclass(frozen=True)
class Result:
    """What one call came to: a sample, or the cause of its failure (and how long to back off)."""

    sample: Sample | None = None
    cause: Cause | None = None
    retry_after: float = 0.0
    refused: str | None = None  # the budget refused the call: it was not made


# When the request started on its connection (a new connection's set-up included), per greenlet
# (Locust patches threading.local): requests and urllib3 spend about half a millisecond preparing
# a call before it, which is the client's own time and would be counted in TTFT if the clock
# started at the call (bench/loadgen.py measured 1.3 ms of TTFT error at 2 streams with it, 0.8
# without; AIPerf 0.7).
_SENT = threading.local()
# The largest answer read: past it the request fails as `too_large` (the largest real one, the
# embeddings of 2,048 inputs at 1,024 dimensions, is about 40 MB; a 4,096-token stream under 1 MB).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# What the spec says of the two operations the profiles call: their caps and where usage is.
CHAT = operations.load().by_label["POST /v1/chat/completions"]
RESPONSES = operations.load().by_label["POST /v1/responses"]
EMBEDDINGS = operations.load().by_label["POST /v1/embeddings"]


class _TimedHTTP(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _SENT.at = time.perf_counter()
        super().request(*args, **kwargs)


class _TimedHTTPS(HTTPSConnection):
    """urllib3 opens an HTTPS connection (TCP and TLS) before `request`: a new connection's set-up
    counts from its start, as a plain connection's does inside `request`."""

    _fresh = False

    def connect(self) -> None:
        _SENT.at = time.perf_counter()
        self._fresh = True
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        if not self._fresh:
            _SENT.at = time.perf_counter()
        self._fresh = False
        super().request(*args, **kwargs)


class _TimedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedHTTP


class _TimedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPS


class _TimedAdapter(HTTPAdapter):
    """requests' adapter whose connections note when they start sending a request (through a
    proxy they do not, and the clock starts at the call)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TimedHTTPPool, "https": _TimedHTTPSPool}


def _sent_since(start: float) -> float:
    """When this greenlet's last request went out, if after `start`; else `start`."""
    at = getattr(_SENT, "at", None)
    return at if at is not None and at >= start else start


class LLMClient:
    def __init__(
        self,
        host: str,
        api_key: str,
        events: Any,
        budget: Budget,
        total_timeout: float,
        stall_timeout: float,
    ) -> None:
        self.host = host
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.events = events
        self.budget = budget
        self.total_timeout = total_timeout
        self.stall_timeout = stall_timeout
        self.http = requests.Session()
        # The environment's proxy and CA settings, read once: requests reads them again on every
        # call (about 0.1 ms, inside the measured time) unless told not to trust the environment.
        found = self.http.merge_environment_settings(host, {}, None, None, None)
        self.http.proxies.update(found["proxies"] or {})
        self.http.verify = found["verify"]
        self.http.trust_env = False
        self.http.mount("http://", _TimedAdapter())
        self.http.mount("https://", _TimedAdapter())

    def close(self) -> None:
        self.http.close()

    def _fire(self, name: str, start: float, length: int, error: str | None, context: dict[str, Any]) -> None:
        self.events.request.fire(
            request_type="POST",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=Exception(error) if error else None,
            context=context,
        )

    def _failed(self, name: str, start: float, cause: Cause, detail: str, retry_after: float = 0.0) -> Result:
        self._fire(name, start, 0, f"{cause}: {detail[:200]}", {"llm_cause": cause})
        return Result(cause=cause, retry_after=retry_after)

    def _hold(self, body: dict[str, Any], operation: Operation) -> Hold | str:
        assert operation.generates is not None
        try:
            return self.budget.reserve(body, str(body.get("model")), operation.generates)
        except Exhausted as exc:
            return str(exc)

    def chat(
        self, body: dict[str, Any], name: str, limit: int | None, users: int, operation: Operation = CHAT
    ) -> Result:
        """One chat completion (or, with `operation` RESPONSES, one response), streamed when `body`
        says so."""
        hold = self._hold(body, operation)
        if isinstance(hold, str):
            return Result(refused=hold)
        stream = bool(body.get("stream"))
        request_id = uuid.uuid4().hex
        start = time.perf_counter()
        try:
            response = self.http.request(
                "POST",
                f"{self.host}{operation.path}",
                data=orjson.dumps(body),
                headers={**self.headers, "x-request-id": request_id},
                stream=True,
                timeout=(10, self.stall_timeout),
            )
        except Exception as exc:  # connection refused or reset before any answer
            self.budget.release(hold)
            return self._failed(name, start, "connection", repr(exc), retry_after=1.0)
        start = _sent_since(start)  # the clock of TTFT and end to end starts when the request went out
        most_events = max(8 * int(limit or 4096), 4096)  # a token an event, with room to spare
        with response:
            meter = StreamMeter(start)
            raw = bytearray()
            cut: Cause | None = None
            try:
                for chunk in response.iter_content(chunk_size=_piece(response)):
                    now = time.perf_counter()
                    raw += chunk
                    if len(raw) > MAX_ANSWER_BYTES:
                        cut = "too_large"
                        break
                    if stream:
                        meter.feed(chunk, now)
                        if len(meter.content_times) > most_events:  # far more than the tokens asked
                            cut = "too_large"
                            break
                    elif meter.first_byte is None:  # a whole answer: only its first byte is timed
                        meter.first_byte = now
                    if now - start > self.total_timeout:
                        cut = "timeout_total"
                        break
            except sse.EventTooLarge:
                cut = "too_large"
            except Exception as exc:
                cut = "timeout_stall" if "timed out" in repr(exc).lower() else "cut_stream"
        end = time.perf_counter()
        model = str(body["model"])
        if response.status_code != 200:
            payload = json_or_none(bytes(raw))
            self.budget.release(hold)
            retry = float(response.headers.get("retry-after") or 0)
            return self._failed(name, start, classify(response.status_code, payload), str(payload), retry)
        sample = meter.finish(end, request_id) if stream else _plain_sample(meter, bytes(raw), start, end)
        sample.overhead = _overhead(response.headers.get("x-workerprobe-overhead-ms"))
        if stream and cut is None:
            if meter.error is not None:
                cut = "upstream_5xx"
            elif meter.malformed:
                cut = "malformed"
            elif not meter.done:
                cut = "cut_stream"
        used = (sample.prompt_tokens, sample.output_tokens)
        if stream and cut is None and buffered(sample):
            self.budget.settle(hold, model, 200, used)
            waited = sample.ttft or 0.0
            detail = f"{len(sample.content_times)} chunks arrived at once after {waited * 1000:.0f} ms"
            return self._failed(name, start, "buffered", detail)
        if cut is not None:
            self.budget.settle(hold, model, 200, None)
            return self._failed(name, start, cut, f"after {len(raw)} bytes")
        self.budget.settle(hold, model, 200, used)
        context = {"llm_sample": sample, "model": model, "limit": limit, "users": users}
        self._fire(name, start, len(raw), None, context)
        return Result(sample=sample)

    def embed(self, body: dict[str, Any], name: str = "embeddings") -> Result:
        hold = self._hold(body, EMBEDDINGS)
        if isinstance(hold, str):
            return Result(refused=hold)
        start = time.perf_counter()
        try:
            response = self.http.post(
                f"{self.host}/v1/embeddings",
                data=orjson.dumps(body),
                headers=self.headers,
                timeout=(10, self.stall_timeout),
                stream=True,
            )
        except Exception as exc:
            self.budget.release(hold)
            return self._failed(name, start, "connection", repr(exc), retry_after=1.0)
        raw = bytearray()
        with response:
            try:
                for chunk in response.iter_content(chunk_size=_piece(response)):
                    raw += chunk
                    cut: Cause | None = None
                    if time.perf_counter() - start > self.total_timeout:
                        cut = "timeout_total"
                    elif len(raw) > MAX_ANSWER_BYTES:
                        cut = "too_large"
                    if cut is not None:
                        self.budget.settle(hold, str(body["model"]), 200, None)
                        return self._failed(name, start, cut, f"after {len(raw)} bytes")
            except Exception as exc:
                self.budget.settle(hold, str(body["model"]), 200, None)
                cause: Cause = "timeout_stall" if "timed out" in repr(exc).lower() else "cut_stream"
                return self._failed(name, start, cause, repr(exc))
        payload = json_or_none(bytes(raw))
        if response.status_code != 200:
            self.budget.release(hold)
            retry = float(response.headers.get("retry-after") or 0)
            return self._failed(name, start, classify(response.status_code, payload), str(payload)[:200], retry)
        assert EMBEDDINGS.usage is not None
        self.budget.settle(hold, str(body["model"]), 200, EMBEDDINGS.usage.tokens(payload) or (0, 0))
        self._fire(name, start, len(response.content), None, {})
        return Result()


def _overhead(header: str | None) -> float | None:
    try:
        return float(header) / 1000 if header is not None else None
    except ValueError:
        return None


def json_or_none(raw: bytes) -> Any:
    """The JSON of a body, or None when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _piece(response: requests.Response) -> int | None:
    """How much to read at a time: what arrives, for a body of unknown length (a stream, chunked);
    64 KB reads for one with a Content-Length (urllib3 reads such a body whole when asked for
    what arrives: 10 GB for a server that says so)."""
    return 65536 if "content-length" in response.headers else None


def _plain_sample(meter: StreamMeter, content: bytes, start: float, end: float) -> Sample:
    """A non-streamed answer: end to end, its usage and finish reason (no TTFT). A response (the
    Responses API) reports `input_tokens`/`output_tokens` and ends "length" when it is incomplete
    for `max_output_tokens`."""
    body = json_or_none(content) or {}
    usage = body.get("usage") or {}
    if body.get("object") == "response":
        details = body.get("incomplete_details") or {}
        cut = body.get("status") == "incomplete" and details.get("reason") == "max_output_tokens"
        finish = "length" if cut else ("stop" if body.get("status") == "completed" else body.get("status"))
        output, prompt = usage.get("output_tokens"), usage.get("input_tokens")
    else:
        finish = ((body.get("choices") or [{}])[0]).get("finish_reason")
        output, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    return Sample(
        e2e=end - start,
        ttfb=None if meter.first_byte is None else meter.first_byte - start,
        output_tokens=int(output or 0),
        prompt_tokens=int(prompt or 0),
        finish_reason=finish,
    )
