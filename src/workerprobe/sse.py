"""Server-sent events: one codec for the emulator, the gateway, the tests and the load profiles.

Encoding writes `data: <json>\\n\\n` events, `: comment` keep-alives and the `data: [DONE]`
terminator that OpenAI-style streams end with. Decoding is incremental and follows the WHATWG
event-stream rules that the `openai` SDK's parser follows too: bytes may be split anywhere (inside
a multi-byte character, between `\\r` and `\\n`, inside a field name), lines end in CRLF, LF or CR,
`data` lines of one event join with `\\n`, comments are ignored, and an event is dispatched only at
a blank line, so an unterminated event at the end of the stream is dropped.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["DONE", "Decoder", "Event", "EventTooLarge", "comment", "encode", "encode_json"]

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """The data field parsed as JSON (raises `orjson.JSONDecodeError` when it is not)."""
        return orjson.loads(self.data)


def encode(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """Frame one event; multi-line data becomes several `data:` lines."""
    head = ""
    if event is not None:
        head += f"event: {event}\n"
    if id is not None:
        head += f"id: {id}\n"
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (head + body + "\n").encode()


def encode_json(obj: Any, event: str | None = None) -> bytes:
    """Frame one event whose data is `obj` as compact JSON (never contains a newline)."""
    payload = orjson.dumps(obj)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def comment(text: str = "ping") -> bytes:
    """A comment line: clients ignore it, proxies see traffic (a keep-alive)."""
    return f": {text}\n\n".encode()


class EventTooLarge(ValueError):
    """An event (or a line) grew past the decoder's `max_event` characters without ending."""


class Decoder:
    """Incremental event-stream decoder: feed it bytes as they arrive, get complete events.
    `max_event`: the most characters one event may take before it ends (EventTooLarge past it:
    what a reader of a stream from someone else needs, a line that never ends included)."""

    def __init__(self, max_event: int | None = None) -> None:
        self.max_event = max_event
        self._held = 0  # characters of the event under way (its data lines, and the open line)
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._first = True
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        text = self._text.decode(chunk)
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        events = self._lines(text)
        if self.max_event is not None and len(self._buffer) + self._held > self.max_event:
            raise EventTooLarge(f"an event of more than {self.max_event} characters")
        return events

    def close(self) -> list[Event]:
        """End of stream: flush a dangling line; an event not ended by a blank line is dropped."""
        events = self._lines(self._text.decode(b"", final=True))
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""
        self._data = []
        self._event = ""
        return events

    def _lines(self, text: str) -> list[Event]:
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two reads
        self._pending_cr = False
        buffer = self._buffer + text
        events: list[Event] = []
        start = 0
        n = len(buffer)
        i = 0
        while i < n:
            ch = buffer[i]
            if ch == "\n" or ch == "\r":
                event = self._line(buffer[start:i])
                if event is not None:
                    events.append(event)
                if ch == "\r":
                    if i + 1 < n:
                        if buffer[i + 1] == "\n":
                            i += 1
                    else:
                        self._pending_cr = True
                start = i + 1
            i += 1
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._held += len(value) + 1
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        self._held = 0
        if not self._data:
            self._event = ""
            return None
        event = Event(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        return event
