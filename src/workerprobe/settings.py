"""Typed settings, read once from the environment (and `.env`) and passed in.

Each part has its own object with its own prefix; no module reads the environment elsewhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workerprobe.paths import state_dir

__all__ = ["CLOUDFLARE_API", "EmulatorSettings", "GatewaySettings", "LATENCY_PRESETS"]

CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"

# Time to first token and time per output token, in milliseconds.
LATENCY_PRESETS: dict[str, tuple[float, float]] = {
    "zero": (0.0, 0.0),
    # Seen on the free plan for 8B-class models: a few hundred ms to the first token, ~40 tokens/s.
    "realistic": (350.0, 25.0),
}


class EmulatorSettings(BaseSettings):
    """The Workers AI emulator. Environment names: `WORKERPROBE_EMULATOR_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="WORKERPROBE_EMULATOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8788
    # The bearer token clients must send; any non-empty token is accepted when unset.
    api_token: str | None = Field(
        default=None, validation_alias=AliasChoices("CF_API_TOKEN", "CF_API_KEY", "api_token")
    )

    # Free-plan limits. `free_plan` switches on the catalogue's daily allocation and the
    # per-minute limits; `daily_neurons` sets another allocation (and switches metering on).
    free_plan: bool = False
    daily_neurons: float | None = None
    rate_limits: bool = False
    quota_code: Literal["4006", "3036"] = "4006"
    # Non-streamed generations whose modelled duration exceeds this fail with 408 / 3046.
    timeout_s: float = 120.0
    max_body_bytes: int = 100_000_000

    # Latency model: time to first token and time per output token.
    latency: Literal["zero", "realistic"] = "zero"
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    # Faults: a share of run requests per fault name (e.g. {"3040": 0.1}), drawn from `fault_seed`.
    fault_rates: dict[str, float] = Field(default_factory=dict)
    fault_seed: int = 0
    stall_ms: float = 3000.0
    # A Retry-After header on 3040 and 3021 answers, in seconds (a 3021 from the per-minute limit
    # carries the limiter's own wait). Unset: none, as no capture shows the live API sending one.
    retry_after_s: float | None = None

    # Capacity: generations one model serves at once (unset: no limit). Past it a request waits
    # for a slot, or with `options.rejectIfBusy` answers 429 / 3040 at once (changelog 2026-09-17).
    # The `busy` fault makes one request find its model busy: it waits `busy_wait_s`.
    model_concurrency: int | None = Field(default=None, ge=1)
    busy_wait_s: float = 1.0
    # The batch API: how long a batch stays queued, then running, before its responses are ready.
    batch_queue_s: float = 1.0
    batch_run_s: float = 1.0
    # Answer as through AI Gateway (cf-aig-* ids on every answer) even without cf-aig-gateway-id.
    ai_gateway: bool = False

    # Random `p` padding on stream events, as the real API sends against the length side channel.
    padding: bool = True
    # The live API ignores `per_page` on /ai/models/search and returns every model.
    honour_per_page: bool = False
    # Test mode opens /__emulator/clock and /__emulator/reset.
    test_mode: bool = False
    # Trace every streamed call, also those without an x-request-id (under `anon-<n>`): the
    # server's clock for load generators that send no id of their own (bench/loadgen.py).
    trace_all: bool = False
    # On /ai/v1/chat/completions, join a message's OpenAI text parts ([{"type": "text", ...}])
    # into its string content. Off, as the live API's text models take a string (5006 on an
    # array); on for clients that always send parts, as GuideLLM does (bench/loadgen.py).
    text_parts: bool = False

    @model_validator(mode="after")
    def _apply_presets(self) -> EmulatorSettings:
        if self.free_plan:
            self.rate_limits = True
        ttft, tpot = LATENCY_PRESETS[self.latency]
        if self.ttft_ms is None:
            self.ttft_ms = ttft
        if self.tpot_ms is None:
            self.tpot_ms = tpot
        return self

    @property
    def ttft_s(self) -> float:
        return (self.ttft_ms or 0.0) / 1000

    @property
    def tpot_s(self) -> float:
        return (self.tpot_ms or 0.0) / 1000


class GatewaySettings(BaseSettings):
    """The reference gateway. Environment names follow the upstream Worker's `.env`
    (`API_KEY`, `CF_ACCOUNT_ID`, `CF_API_TOKEN` or `CF_API_KEY`, `CF_API_BASE_URL`); the rest
    are `WORKERPROBE_GATEWAY_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="WORKERPROBE_GATEWAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8787
    # Client keys: this one, plus any made with `workerprobe api-key create`.
    api_key: str | None = Field(default=None, validation_alias=AliasChoices("API_KEY", "api_key"))
    # Upstream: the Workers AI REST API (or the emulator).
    # Unset: the real API (https://api.cloudflare.com/client/v4) when an account or token is set,
    # otherwise `workerprobe gateway` starts the embedded emulator and uses it.
    cf_api_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CF_API_BASE_URL", "cf_api_base_url")
    )
    cf_account_id: str | None = Field(default=None, validation_alias=AliasChoices("CF_ACCOUNT_ID", "cf_account_id"))
    cf_api_token: str | None = Field(
        default=None, validation_alias=AliasChoices("CF_API_TOKEN", "CF_API_KEY", "cf_api_token")
    )
    upstream_timeout_s: float = 300.0
    # What the upstream may send (past it the call fails as an upstream error, 502, and its
    # connection is closed): a body read whole (the largest real one, 100 embeddings of 1,024
    # dimensions, is about 2 MB), one event of a stream, a whole stream (a 4,096-token answer is
    # under 1 MB of events). A response's head is held to 64 KB and 100 header lines.
    upstream_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    upstream_max_event_bytes: int = Field(default=1024 * 1024, ge=4096)
    upstream_max_stream_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    # The client of the upstream: the gateway's own (cloudflare/http1.py), or aiohttp's behind
    # the same methods, a switch for a problem in the field (aiohttp honours HTTPS_PROXY).
    upstream_client: Literal["own", "aiohttp"] = "own"

    @property
    def upstream_configured(self) -> bool:
        return bool(self.cf_api_base_url or self.cf_account_id or self.cf_api_token)

    @property
    def upstream_url(self) -> str:
        return self.cf_api_base_url or CLOUDFLARE_API

    # Storage of assistants, threads, messages, runs and keys: a SQLite file or a Redis URL.
    # Default: gateway.sqlite3 in the state directory (workerprobe.paths), never the working directory.
    database: str = Field(default_factory=lambda: str(state_dir() / "gateway.sqlite3"))
    redis_url: str | None = None
    redis_prefix: str = "workerprobe:"

    # OpenAI model names clients may send, and the Workers AI model each one means.
    model_aliases: dict[str, str] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": "@cf/meta/llama-3.1-8b-instruct-fast",
            "gpt-4o": "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
            "text-embedding-3-small": "@cf/baai/bge-base-en-v1.5",
            "text-embedding-3-large": "@cf/baai/bge-large-en-v1.5",
            "text-embedding-ada-002": "@cf/baai/bge-base-en-v1.5",
        }
    )
    # A retired model: "replace" routes to the catalogue's replacement (stated in the
    # `x-workerprobe-model-replaced` header); "error" answers 404 naming the replacement.
    retired_models: Literal["replace", "error"] = "replace"

    # A deliberate max_tokens for requests that set none, per model ("*" for every model),
    # instead of the upstream's silent 256 (e.g. {"*": 1024}). Unset: the upstream default.
    default_max_tokens: dict[str, int] = Field(default_factory=dict)

    # --- The free-plan methods (gateway/freeplan/). Each is off until set; `free_plan` switches
    # on the recommended set (values set explicitly win). ---
    free_plan: bool = False
    # Retries of transient upstream failures (3040 capacity, 3021 per-minute limit, 5xx, no
    # answer): at most this many after the first call, with full-jitter exponential backoff
    # (`retry_base_s` doubling up to `retry_max_s`, never shorter than the upstream's Retry-After),
    # within `retry_deadline_s` of the request's start. `retry_budget`: retries may add at most
    # this share to the calls made (a retry storm cannot multiply the load on a struggling upstream).
    retry_attempts: int = Field(default=0, ge=0, le=10)
    retry_base_s: float = Field(default=0.25, gt=0)
    retry_max_s: float = Field(default=8.0, gt=0)
    retry_deadline_s: float = Field(default=30.0, gt=0)
    retry_budget: float = Field(default=0.2, ge=0)
    # Exact-match response cache for deterministic chat requests (temperature 0 or a seed), in
    # the store (SQLite or Redis): entries live this many seconds; 0 switches the cache off.
    cache_ttl_s: float = Field(default=0.0, ge=0)
    # Continuation: when the upstream stops at its token limit below what the client asked for,
    # ask it to continue and stitch the parts. Models (or "*") where answers are continued even
    # when the client set no max_tokens, up to `continuation_max_tokens`.
    # The Responses API for the models Workers AI serves it for (GPT-OSS): passed to the upstream's
    # own /ai/v1/responses (its reasoning items kept); off, they go through the chat core as others.
    responses_passthrough: bool = True
    continuation_models: list[str] = Field(default_factory=list)
    # Client keys (their ids from `workerprobe api-key list`, or "api_key" for API_KEY) whose
    # answers are continued on every model.
    continuation_keys: list[str] = Field(default_factory=list)
    continuation_max_calls: int = Field(default=8, ge=2)
    continuation_max_tokens: int = Field(default=4096, ge=1)
    # Upstream calls ask at most this many tokens each (0: no cap), so that long answers come in
    # parts that finish within the upstream's time limit for non-streamed generations.
    continuation_part_tokens: int = Field(default=0, ge=0)
    # Embedding inputs over the model's token limit: truncated to it (true), or a 400 with the
    # counts (false). A client may opt in per request with `x-workerprobe-truncate: true`.
    embedding_truncate: bool = False
    # Neuron budgets per UTC day, from upstream usage and the catalogue's prices: in total, and
    # per client key. At the budget the gateway answers 429 insufficient_quota itself.
    daily_neurons: float | None = Field(default=None, gt=0)
    key_daily_neurons: float | None = Field(default=None, gt=0)
    # Per model, e.g. {"@cf/meta/llama-3.3-70b-instruct-fp8-fast": 3000}: past it, the model's
    # fallback is used (`fallback_models`), or 429 when it has none.
    model_daily_neurons: dict[str, float] = Field(default_factory=dict)
    # Per-key request rate limit, e.g. "300/minute" or "10/second;300/minute".
    key_rate_limit: str | None = None
    # Fallback: the model to use instead when a model is out of capacity (after retries) or its
    # share of the budget is spent; "*" for any model. E.g. {"*": "@cf/meta/llama-3.2-1b-instruct"}.
    fallback_models: dict[str, str] = Field(default_factory=dict)

    keepalive_s: float = 15.0
    max_body_bytes: int = 4_000_000
    cors_origins: list[str] = Field(default_factory=list)

    # --- Hardening. Distinct wrong keys per client address and minute before the address is
    # refused (429) for the rest of the minute; 0: no limit. Addresses never refused: loopback by
    # default (a test suite on the same machine sends hundreds of invalid keys a minute; behind a
    # reverse proxy on the host, the client's address comes from X-Forwarded-For).
    auth_failures_per_minute: int = Field(default=30, ge=0)
    auth_failures_exempt: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # SQLite: how long a write waits for another process's lock before the request is a 503.
    store_busy_timeout_s: float = Field(default=5.0, gt=0)
    # How often a gateway process records that it is alive (runs of a dead process are failed
    # about three beats after it died).
    run_heartbeat_s: float = Field(default=5.0, gt=0)
    # The HTTP server: a request's headers and body must arrive within these many seconds;
    # idle keep-alive connections close after `idle_timeout_s`; at most `max_connections` are open
    # (past it the oldest connection still sending its request is closed first).
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    idle_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=4096, ge=16)
    # Server processes on one port (the kernel spreads the connections); more than one needs the
    # shared state in Redis (`redis_url`).
    workers: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _free_plan_preset(self) -> GatewaySettings:
        if self.free_plan:
            chosen = self.model_fields_set
            preset: dict[str, object] = {
                "retry_attempts": 3,
                "cache_ttl_s": 3600.0,
                "continuation_models": ["*"],
                "daily_neurons": 10_000.0,
            }
            for name, value in preset.items():
                if name not in chosen:
                    setattr(self, name, value)
        return self
