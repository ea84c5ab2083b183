"""Errors the emulator answers with, in the Cloudflare v4 envelope.

    UpstreamError(status, code, message)   any failure; its `key` names the catalogue entry
      └── BadInput                         400 / 5006 with a schema-style detail

The body is `{"result": null, "success": false, "errors": [{"code", "message"}], "messages": []}`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from workerprobe.catalogue import load

__all__ = ["BadInput", "UpstreamError", "envelope_response"]


class UpstreamError(Exception):
    """An error the emulated API answers with, built from the catalogue's error table."""

    def __init__(self, key: str, headers: dict[str, str] | None = None, **fields: object) -> None:
        spec = load().error(key)
        self.key = key
        self.status = spec.status
        self.code = spec.code
        self.message = spec.format(**fields)
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {
            "result": None,
            "success": False,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
        }

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


class BadInput(UpstreamError):
    """Input that does not meet the model's schema: 400 / 5006."""

    def __init__(self, detail: str) -> None:
        super().__init__("bad_input", detail=detail)
        self.detail = detail


def envelope_response(result: Any, status: int = 200, **extra: Any) -> Response:
    """A success in the v4 envelope."""
    body = {"result": result, "success": True, "errors": [], "messages": [], **extra}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
