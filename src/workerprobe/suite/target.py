"""Which server the suite tests: a deployed Worker from the environment or `.env`
(`CLOUDFLARE_WORKER_URL` ending in `/v1`, and `API_KEY`), or, with neither set, the embedded
default: the workerprobe gateway in front of the emulator, started on free loopback ports."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from workerprobe.catalogue import load
from workerprobe.procs import gateway_over_emulator

__all__ = ["Target", "chat_model", "configured", "embedded", "embedding_model"]


def chat_model() -> str:
    """The chat model the suite asks for (`WORKERPROBE_CHAT_MODEL`: a Worker may serve others)."""
    return os.environ.get("WORKERPROBE_CHAT_MODEL") or load().default("text-generation").name


def embedding_model() -> str:
    """The embedding model the suite asks for (`WORKERPROBE_EMBEDDING_MODEL`)."""
    return os.environ.get("WORKERPROBE_EMBEDDING_MODEL") or load().default("text-embeddings").name


@dataclass(frozen=True)
class Target:
    root: str  # base URL without /v1: /models/search lives outside it
    api_key: str
    embedded: bool
    emulator_url: str | None = None
    # Its upstream is the workerprobe emulator (always for the embedded default; for a configured
    # target when WORKERPROBE_TARGET_UPSTREAM=emulator): emulator-only scenarios run, no neurons
    # are real.
    upstream_emulated: bool = False

    @property
    def emulated(self) -> bool:
        return self.embedded or self.upstream_emulated

    @property
    def v1(self) -> str:
        return f"{self.root}/v1"

    def describe(self) -> str:
        if self.embedded:
            return f"the embedded default (workerprobe gateway at {self.root}, emulator upstream)"
        return f"{self.v1} (CLOUDFLARE_WORKER_URL{', emulator upstream' if self.upstream_emulated else ''})"


def configured(env_file: Path | None = None) -> Target | None:
    """The target named by the environment (first) or `.env`, if any.
    `WORKERPROBE_TARGET=embedded` forces the embedded default whatever `.env` says."""
    if os.environ.get("WORKERPROBE_TARGET") == "embedded":
        return None
    values = {k: v for k, v in dotenv_values(env_file or Path(".env")).items() if v}
    url = os.environ.get("CLOUDFLARE_WORKER_URL") or values.get("CLOUDFLARE_WORKER_URL")
    key = os.environ.get("API_KEY") or values.get("API_KEY")
    if not url:
        return None
    if not key:
        raise RuntimeError("CLOUDFLARE_WORKER_URL is set but API_KEY is not: the suite needs both")
    root = url.rstrip("/")
    root = root[: -len("/v1")] if root.endswith("/v1") else root
    upstream = os.environ.get("WORKERPROBE_TARGET_UPSTREAM") or values.get("WORKERPROBE_TARGET_UPSTREAM")
    emulated = upstream == "emulator"
    return Target(root=root, api_key=key, embedded=False, upstream_emulated=emulated)


@contextmanager
def embedded(database: Path, defects: Sequence[str] = ()) -> Iterator[Target]:
    """The gateway and the emulator as real processes, stopped when the block ends; `defects`
    (default: `WORKERPROBE_SELFTEST_DEFECTS`, a JSON list): a gateway with seeded defects."""
    chosen = list(defects) or json.loads(os.environ.get("WORKERPROBE_SELFTEST_DEFECTS") or "[]")
    key = f"sk-suite-{secrets.token_hex(8)}"
    token = secrets.token_hex(8)
    command: tuple[Sequence[str], str] = (
        (("--defects", json.dumps(chosen)), "workerprobe.suite.defects") if chosen else (("gateway",), "workerprobe")
    )
    stack = gateway_over_emulator(
        api_key=key, token=token, account="workerprobe-suite", gateway=command, database=str(database), redis_url=""
    )
    with stack as (gateway, emulator):
        yield Target(root=gateway.url, api_key=key, embedded=True, emulator_url=emulator.url)
