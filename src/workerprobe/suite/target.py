"""Which server the suite tests: a deployed Worker from the environment or `.env`
(`CLOUDFLARE_WORKER_URL` ending in `/v1`, and `API_KEY`), or, with neither set, the embedded
default: the workerprobe gateway in front of the emulator, started on free loopback ports."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from workerprobe.catalogue import load
from workerprobe.procs import gateway_over_emulator

__all__ = ["Target", "TargetError", "chat_model", "configured", "embedded", "embedding_model", "near_misses"]


def chat_model() -> str:
    """The chat model the suite asks for (`WORKERPROBE_CHAT_MODEL`: a Worker may serve others)."""
    return os.environ.get("WORKERPROBE_CHAT_MODEL") or load().default("text-generation").name


def embedding_model() -> str:
    """The embedding model the suite asks for (`WORKERPROBE_EMBEDDING_MODEL`)."""
    return os.environ.get("WORKERPROBE_EMBEDDING_MODEL") or load().default("text-embeddings").name


@dataclass(frozen=True)
class Target:
    root: str  # base URL without /v1: /models/search lives outside it
    api_key: str = field(repr=False)  # never in a repr: a failing test's traceback shows its arguments
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


class TargetError(RuntimeError):
    """The environment or `.env` names no target the user can have meant: the run stops (exit 2)
    with this one line, never falls back to another target."""


# Names users set for the target that workerprobe does not read: each stops a run that has no
# target, since the embedded default is then not what was meant.
URL_ALIASES = ("OPENAI_BASE_URL", "OPENAI_API_BASE", "WORKER_URL", "CF_WORKER_URL", "CLOUDFLARE_URL", "WORKERPROBE_URL")
KEY_ALIASES = ("WORKER_API_KEY", "WORKER_KEY", "CLOUDFLARE_WORKER_KEY", "WORKERPROBE_API_KEY")


def _distance(a: str, b: str) -> int:
    """Edits from one name to the other: a letter added, removed, changed, or two swapped."""
    d = [[max(i, j) if not (i and j) else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def near_misses(names: Sequence[str], meant: str, aliases: Sequence[str]) -> list[str]:
    """The names (as set) that look like `meant` but are not it: an alias, or within 2 edits
    (1 for a name of 8 letters or fewer: `GPG_KEY`, set in Python's container images, is 2 from
    `API_KEY`)."""
    most = 2 if len(meant) > 8 else 1
    return [n for n in names if n != meant and (_distance(n.upper(), meant) <= most or n.upper() in aliases)]


def _missed(url: str | None, key: str | None, where: dict[str, list[str]]) -> str | None:
    """Why no target is what the user meant: a near miss of a name that would have chosen one."""
    wanted = [("CLOUDFLARE_WORKER_URL", URL_ALIASES, url), ("API_KEY", KEY_ALIASES, key)]
    for meant, aliases, value in wanted:
        if value:
            continue
        for source, names in where.items():
            for name in near_misses(names, meant, aliases):
                return (
                    f"{source} sets {name}, which workerprobe does not read: did you mean {meant}? No target was "
                    f"tested (to test the embedded default on purpose, remove {name} or set "
                    "WORKERPROBE_TARGET=embedded)"
                )
    return None


def configured(env_file: Path | None = None) -> Target | None:
    """The target named by the environment (first) or `.env`, if any.
    `WORKERPROBE_TARGET=embedded` forces the embedded default whatever `.env` says.
    Raises `TargetError` where what is set cannot be what the user meant: a near miss of a name
    (`CLOUDFLARE_WORKER_ULR`), a URL without a key, a base URL that does not end in `/v1`."""
    if os.environ.get("WORKERPROBE_TARGET") == "embedded":
        return None
    env_file = env_file or Path(".env")
    values = {k: v for k, v in dotenv_values(env_file).items() if v}
    url = os.environ.get("CLOUDFLARE_WORKER_URL") or values.get("CLOUDFLARE_WORKER_URL")
    key = os.environ.get("API_KEY") or values.get("API_KEY")
    where = {str(env_file): list(values), "the environment": [n for n in os.environ if os.environ[n]]}
    missed = _missed(url, key, where)
    if missed:
        raise TargetError(missed)
    if not url:
        return None
    if not key:
        raise TargetError("CLOUDFLARE_WORKER_URL is set but API_KEY is not: the suite needs both")
    root = url.rstrip("/")
    if not root.endswith("/v1"):
        raise TargetError(
            f"CLOUDFLARE_WORKER_URL {url!r} does not end in /v1: give the base URL an OpenAI SDK is given "
            f"(for example {root}/v1); workerprobe does not add or remove path segments"
        )
    root = root[: -len("/v1")]
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
