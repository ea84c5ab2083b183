"""Faults on demand: by request header, by a trigger phrase in the last message, or by rate.

    x-emulate-fault: 3040 | 3021 | 4006 | 3036 | 5xx | 500 | 502 | 503 | 504 | timeout
                     | 2009 | 2021 | 7013 | 2016 | 2017 | 2017-run   (late-2026 errors)
                     | cut-stream | slow-stream | malformed-event | split-events | buffered-stream
                     | busy   (the model is busy: queued for `busy_wait_s`, or 3040 at once with
                               `options.rejectIfBusy`)
    "... EMULATE_FAULT:3040 ..." in the last message (or the prompt)
    "... EMULATE_FAULT:3040@2 ..."  only the first 2 requests with this same text (retries succeed)
    fault_rates = {"3040": 0.1}   a share of run requests, drawn from a seeded generator

Error faults answer at once with the catalogue's error; stream faults change how a stream is sent.
"""

from __future__ import annotations

import random
import re

from workerprobe.emulator.errors import BadInput, UpstreamError

__all__ = ["ERROR_FAULTS", "QUEUE_FAULTS", "STREAM_FAULTS", "Faults"]

# fault name -> catalogue error key
ERROR_FAULTS: dict[str, str] = {
    "3040": "capacity",
    "3021": "rate_limited",
    "4006": "daily_quota",
    "3036": "daily_quota_documented",
    "5xx": "upstream_unavailable",
    "500": "internal",
    "502": "bad_gateway",
    "503": "upstream_unavailable",
    "504": "gateway_timeout",
    "timeout": "timeout",
    "2009": "provider_credentials",
    "2021": "credits_exhausted",
    "7013": "guardrails_unavailable",
    "2016": "prompt_blocked",
    "2017": "response_blocked",
    "2017-run": "run_blocked",
}
STREAM_FAULTS = frozenset({"cut-stream", "slow-stream", "malformed-event", "split-events", "buffered-stream"})
QUEUE_FAULTS = frozenset({"busy"})
_PHRASE = re.compile(r"EMULATE_FAULT:([A-Za-z0-9-]+?)(?:@(\d+))?(?![\w-])")
_TRANSIENT = frozenset({"3040", "3021"})


class Faults:
    def __init__(self, rates: dict[str, float], seed: int, retry_after_s: float | None = None) -> None:
        for name in rates:
            if name not in ERROR_FAULTS and name not in STREAM_FAULTS and name not in QUEUE_FAULTS:
                raise ValueError(f"unknown fault {name!r} in fault_rates")
        self.rates = rates
        self.retry_after_s = retry_after_s
        self._rng = random.Random(seed)
        self._seen: dict[str, int] = {}  # EMULATE_FAULT:<name>@<n>: requests seen per text

    def pick(self, header: str | None, text: str) -> str | None:
        """The fault for this request, if any (header first, then phrase, then rates)."""
        name = header
        if name is None:
            match = _PHRASE.search(text)
            name = match.group(1) if match else None
            if match is not None and match.group(2) is not None:
                if len(self._seen) > 10_000:
                    self._seen.clear()
                seen = self._seen[text] = self._seen.get(text, 0) + 1
                if seen > int(match.group(2)):
                    name = None
        if name is None and self.rates:
            draw = self._rng.random()
            for candidate, rate in self.rates.items():
                if draw < rate:
                    name = candidate
                    break
                draw -= rate
        if name is not None and name not in ERROR_FAULTS and name not in STREAM_FAULTS and name not in QUEUE_FAULTS:
            raise BadInput(f"unknown emulated fault {name!r}")
        return name

    def raise_error(self, name: str | None) -> None:
        if name in ERROR_FAULTS:
            headers = None
            if name in _TRANSIENT and self.retry_after_s is not None:
                headers = {"retry-after": f"{self.retry_after_s:g}"}
            raise UpstreamError(ERROR_FAULTS[name], headers=headers)
