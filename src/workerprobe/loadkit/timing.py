"""Per-request LLM timings, measured as the stream arrives (vLLM bench's conventions):

- TTFB: the first byte of the response body.
- TTFT: the first chunk whose delta carries non-empty content (not the role chunk); for a streamed
  response (the Responses API) the first `response.output_text.delta`.
- ITL: every gap between consecutive content chunks, pooled across requests.
- TPOT: (end-to-end - TTFT) / (output tokens - 1), for more than one output token.
- Output tokens: `usage.completion_tokens` (a response's `output_tokens`) when the target sends it,
  otherwise the content counted with the shared tokenizer (and marked as estimated).
- Finish: a response's terminal event is read as chat's finish reason: `response.incomplete` for
  `max_output_tokens` is "length", `response.completed` "stop"; `response.failed` is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from workerprobe import sse, tokens

__all__ = ["Sample", "StreamMeter", "buffered"]

# A stream counts as buffered on the way (late-2026-updates.md: a proxy that sent a stream in one
# payload) when at least this many content chunks all arrived within BUFFERED_SPREAD of the
# time the first took to come, and that time was long enough to be a model's, not a zero-latency
# upstream's (where every stream arrives at once and nothing was held back).
BUFFERED_MIN_CHUNKS = 4
BUFFERED_SPREAD = 0.05
BUFFERED_MIN_WAIT_S = 0.05


@dataclass
class Sample:
    """One request's measurements (seconds)."""

    e2e: float
    ttfb: float | None = None
    ttft: float | None = None
    gaps: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    estimated: bool = False
    finish_reason: str | None = None
    longest_gap: float = 0.0
    # The gateway's own time, when it says it (`x-workerprobe-overhead-ms`), seconds.
    overhead: float | None = None
    # For the comparison with the server's clock: the request's id, when it was sent and when each
    # content chunk arrived (time.perf_counter(), the machine's CLOCK_MONOTONIC).
    request_id: str | None = None
    sent: float | None = None
    content_times: list[float] = field(default_factory=list)

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.output_tokens <= 1:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


def buffered(sample: Sample) -> bool:
    """Whether the stream arrived held back and in one piece (TTFT close to end to end, gaps near 0)."""
    times = sample.content_times
    if len(times) < BUFFERED_MIN_CHUNKS or sample.sent is None:
        return False
    waited = times[0] - sample.sent
    return waited >= BUFFERED_MIN_WAIT_S and times[-1] - times[0] <= BUFFERED_SPREAD * waited


# The most characters one event may take (a real chunk is under a few KB): a stream past it is cut.
MAX_EVENT = 1024 * 1024


class StreamMeter:
    """Feed it the body's bytes with their arrival time; it times every event."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.decoder = sse.Decoder(max_event=MAX_EVENT)
        self.first_byte: float | None = None
        self.first_content: float | None = None
        self.last_content: float | None = None
        self.last_event: float | None = None
        self.gaps: list[float] = []
        self.content_times: list[float] = []
        self.longest_gap = 0.0
        self.text: list[str] = []
        self.usage: dict[str, int] | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.error: dict[str, object] | None = None
        self.malformed = False

    def feed(self, chunk: bytes, now: float) -> None:
        if self.first_byte is None:
            self.first_byte = now
        for event in self.decoder.feed(chunk):
            self._event(event.data, now)

    def _event(self, data: str, now: float) -> None:
        if self.last_event is not None:
            self.longest_gap = max(self.longest_gap, now - self.last_event)
        self.last_event = now
        if data == "[DONE]":
            self.done = True
            return
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.malformed = True
            return
        if not isinstance(body, dict):
            self.malformed = True
            return
        kind = body.get("type")
        if isinstance(kind, str) and (kind.startswith("response.") or kind == "error"):
            self._response_event(kind, body, now)
            return
        if "error" in body:
            self.error = body["error"] if isinstance(body["error"], dict) else {"message": str(body["error"])}
            return
        if isinstance(body.get("usage"), dict):
            self.usage = body["usage"]
        for choice in body.get("choices") or []:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self._content(content, now)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _content(self, content: str, now: float) -> None:
        """A piece of the answer's text: the first one is TTFT, each later one a gap (ITL)."""
        self.content_times.append(now)
        if self.last_content is None:
            self.first_content = now
        else:
            self.gaps.append(now - self.last_content)
        self.last_content = now
        self.text.append(content)

    def _response_event(self, kind: str, body: dict[str, object], now: float) -> None:
        """One event of a streamed response (the Responses API): its text deltas are the content,
        its one terminal event ends it with the usage and how it ended."""
        if kind == "response.output_text.delta":
            delta = body.get("delta")
            if isinstance(delta, str) and delta:
                self._content(delta, now)
        elif kind == "error":
            self.error = {"message": str(body.get("message") or ""), "code": body.get("code")}
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.done = True
            response = body.get("response") if isinstance(body.get("response"), dict) else {}
            assert isinstance(response, dict)
            usage = response.get("usage")
            given, made = (
                (usage.get(k) for k in ("input_tokens", "output_tokens")) if isinstance(usage, dict) else (0, 0)
            )
            if isinstance(made, int) and not isinstance(made, bool):
                self.usage = {"prompt_tokens": given if isinstance(given, int) else 0, "completion_tokens": made}
            if kind == "response.failed":
                error = response.get("error")
                self.error = error if isinstance(error, dict) else {"message": "response.failed"}
            details = response.get("incomplete_details")
            cut = isinstance(details, dict) and details.get("reason") == "max_output_tokens"
            self.finish_reason = "length" if cut else ("stop" if kind == "response.completed" else "incomplete")

    def finish(self, now: float, request_id: str | None = None) -> Sample:
        text = "".join(self.text)
        if self.usage and isinstance(self.usage.get("completion_tokens"), int):
            output, estimated = self.usage["completion_tokens"], False
            prompt = int(self.usage.get("prompt_tokens") or 0)
        else:
            output, estimated, prompt = tokens.count(text), True, 0
        return Sample(
            e2e=now - self.start,
            ttfb=None if self.first_byte is None else self.first_byte - self.start,
            ttft=None if self.first_content is None else self.first_content - self.start,
            gaps=self.gaps,
            output_tokens=output,
            prompt_tokens=prompt,
            estimated=estimated,
            finish_reason=self.finish_reason,
            longest_gap=self.longest_gap,
            request_id=request_id,
            sent=self.start,
            content_times=self.content_times,
        )
