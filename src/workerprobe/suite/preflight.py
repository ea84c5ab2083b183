"""Before any test: is the target's URL a URL, does its host answer, is the key accepted on a route
that costs nothing? And does `.env` hold what the user meant (a typo in a name silently tests
something else)?

Each failure is one line that says what to do; the run then stops with exit 2 (could not verify).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from dotenv import dotenv_values

from workerprobe.settings import EmulatorSettings, GatewaySettings
from workerprobe.suite import bounds
from workerprobe.suite.target import Target

__all__ = ["KNOWN_NAMES", "Result", "check", "env_warnings"]

_SUITE_NAMES = {
    "CLOUDFLARE_WORKER_URL",
    "API_KEY",
    "CF_ACCOUNT_ID",
    "CF_API_TOKEN",
    "CF_API_KEY",
    "CF_API_BASE_URL",
    "WORKERPROBE_TARGET",
    "WORKERPROBE_TARGET_UPSTREAM",
    "WORKERPROBE_CHAT_MODEL",
    "WORKERPROBE_EMBEDDING_MODEL",
    "WORKERPROBE_CONTRACT_EXAMPLES",
    "WORKERPROBE_STATE_DIR",
    "WORKERPROBE_MAX_NEURONS",
}


def _settings_names() -> set[str]:
    names = set()
    for settings, prefix in ((GatewaySettings, "WORKERPROBE_GATEWAY_"), (EmulatorSettings, "WORKERPROBE_EMULATOR_")):
        for name, info in settings.model_fields.items():
            names.add(f"{prefix}{name}".upper())
            if isinstance(info.alias, str):
                names.add(info.alias.upper())
    return names


KNOWN_NAMES = frozenset(_SUITE_NAMES | _settings_names())


def env_warnings(env_file: Path, environ: dict[str, str]) -> list[str]:
    """Names in `.env` that look like ours but are not (with the likely typo), and a key without a URL."""
    values = {k: v for k, v in dotenv_values(env_file).items()} if env_file.exists() else {}
    warnings = []
    for name in values:
        upper = name.upper()
        if not upper.startswith(("CLOUDFLARE_", "WORKERPROBE_", "CF_", "API_")) or upper in KNOWN_NAMES:
            continue
        guess = difflib.get_close_matches(upper, sorted(KNOWN_NAMES), n=1, cutoff=0.6)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        warnings.append(f"warning: {env_file} sets {name}, which workerprobe does not read{hint}")
    url = environ.get("CLOUDFLARE_WORKER_URL") or values.get("CLOUDFLARE_WORKER_URL")
    key = environ.get("API_KEY") or values.get("API_KEY")
    if key and not url:
        warnings.append(
            "warning: API_KEY is set but CLOUDFLARE_WORKER_URL is not: testing the embedded default, not your Worker"
        )
    return warnings


@dataclass(frozen=True)
class Result:
    ok: bool
    line: str  # what the user reads


def _get(client: httpx.Client, method: str, url: str, key: str, body: object = None) -> httpx.Response:
    return client.request(method, url, headers={"Authorization": f"Bearer {key}"}, json=body)


def _same(answer: httpx.Response, nowhere: httpx.Response) -> bool:
    """The same status and the same body once the paths are taken out: no route there either."""
    if answer.status_code != nowhere.status_code:
        return False
    return re.sub(r"/[\w./-]*", "", answer.text) == re.sub(r"/[\w./-]*", "", nowhere.text)


def check(target: Target, timeout: float = 15.0) -> Result:
    """URL, host, key: the first that fails is the answer (each answer bounded: `timeout` seconds
    for the whole exchange, at most `bounds.MAX_ANSWER_BYTES`)."""
    url = httpx.URL(target.v1)
    if url.scheme not in ("http", "https") or not url.host:
        return Result(False, f"pre-flight: CLOUDFLARE_WORKER_URL {target.v1!r} is not an http(s) URL")
    wrong = "sk-workerprobe-preflight-wrong-key"
    try:
        with bounds.client(min(timeout, bounds.default_deadline())) as client:
            models = _get(client, "GET", f"{target.v1}/models", target.api_key)
            if models.status_code in (401, 403):
                return Result(
                    False,
                    f"pre-flight: API_KEY was rejected (HTTP {models.status_code} on GET {target.v1}/models); "
                    "check API_KEY in .env",
                )
            if 200 <= models.status_code < 300:
                return Result(True, f"pre-flight: {target.v1} answers and accepts the key (GET /models: 200)")
            # No model list here: ask a route that refuses an empty body before it calls a model.
            probe = f"{target.v1}/chat/completions"
            mine = _get(client, "POST", probe, target.api_key, {})
            theirs = _get(client, "POST", probe, wrong, {})
            nowhere = _get(client, "POST", f"{target.v1}/workerprobe-no-such-route", target.api_key, {})
    except bounds.Unbounded as exc:
        return Result(False, f"pre-flight: {target.v1} did not give a usable answer: {exc}; is it an OpenAI API?")
    except httpx.HTTPError as exc:
        reason = type(exc).__name__.replace("Error", " error").replace("Connect ", "connection ").lower()
        return Result(False, f"pre-flight: {target.v1} does not answer ({reason}); is the Worker deployed?")
    if _same(models, nowhere) and _same(mine, nowhere):
        return Result(
            False,
            f"pre-flight: {target.v1} answers /models and /chat/completions as it answers a path that cannot exist "
            f"(HTTP {nowhere.status_code}); CLOUDFLARE_WORKER_URL should be the Worker's base URL ending in /v1",
        )
    if models.status_code == 404 and mine.status_code == 404:
        return Result(
            False,
            f"pre-flight: {target.v1} answers 404 on /models and /chat/completions; "
            "CLOUDFLARE_WORKER_URL should be the Worker's base URL ending in /v1",
        )
    if mine.status_code in (401, 403):
        return Result(
            False,
            f"pre-flight: API_KEY was rejected (HTTP {mine.status_code} on POST /chat/completions); check API_KEY",
        )
    if theirs.status_code in (401, 403):
        return Result(
            True,
            f"pre-flight: {target.v1} answers and accepts the key (GET /models: {models.status_code}; "
            f"an empty chat body: {mine.status_code} with the key, {theirs.status_code} with a wrong one)",
        )
    return Result(
        True,
        f"pre-flight: {target.v1} answers, but a wrong key is not refused either (HTTP {theirs.status_code}): "
        "the key cannot be verified",
    )
