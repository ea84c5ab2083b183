"""workerprobe load profiles: LLM latency (TTFB, TTFT, TPOT, ITL, end to end), truncation,
timeouts and failure causes against an OpenAI-compatible gateway, within a neuron budget.

Run through `load/run.py` (or `make load`), which picks the target and writes the reports.
User classes (choose by name or tag): ChatUser (chat), StreamUser (stream), EmbeddingsUser
(embeddings), LifecycleUser (lifecycle), MixUser (mix). The LLM metrics are kept out of Locust's
request statistics (exact percentiles, their own names) and written to reports/load/summary.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import orjson
import requests
from locust import HttpUser, LoadTestShape, constant_throughput, events, tag, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from shapes import PROFILES, Plan, plan

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.causes import Cause, classify
from workerprobe.loadkit.summary import Collector
from workerprobe.loadkit.timing import StreamMeter
from workerprobe.suite.budget import Budget, Exhausted, Hold

COLLECTOR = Collector()
CATALOGUE = load_catalogue()
STATE: dict[str, Any] = {"budget": None, "stop_reason": None}

# Prompt sets (--prompts): (prompt, max_tokens) pairs taken in turn.
PROMPT_SETS: dict[str, list[tuple[str, int | None]]] = {
    # A mix of short, capped and long answers.
    "mix": [
        ("What is 3 * 10?", None),
        ("Tell me about harbours in the north.", 128),
        ("Write a very long essay of at least 3000 words about Rome.", 64),
        ("Write a detailed story about a mountain village.", None),
    ],
    # Answers of 400 to 900 tokens with no max_tokens: past the 256-token default, so cut unless
    # the gateway continues them. (EMULATE_LONG_TEXT:n makes the emulator answer with its known
    # text of n tokens; a real model answers the request in front of it.)
    "long-answer": [
        (f"Write a detailed story of about {n * 3 // 4} words about a mountain village. EMULATE_LONG_TEXT:{n}", None)
        for n in (400, 600, 900)
    ],
    # Four questions asked over and over, greedily (temperature 0): what a cache is for.
    "repeated": [
        ("What is the capital of France? Answer in one sentence.", 64),
        ("Give three tips for writing clear documentation.", 96),
        ("What is 12 * 12?", 32),
        ("Summarise the water cycle in two sentences.", 96),
    ],
}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("workerprobe")
    group.add_argument("--api-key", default=os.environ.get("API_KEY", ""), help="bearer key of the target")
    group.add_argument("--chat-model", default="@cf/meta/llama-3.1-8b-instruct-fast")
    group.add_argument("--embedding-model", default="@cf/baai/bge-base-en-v1.5")
    group.add_argument("--load-profile", default="steady", choices=PROFILES, help="load shape (shapes.py)")
    group.add_argument("--load-users", type=int, default=8, help="users at the top of the shape")
    group.add_argument("--load-seconds", type=float, default=20.0, help="length of the shape")
    group.add_argument("--step", type=int, default=4, help="users added per step (profile step)")
    group.add_argument("--step-seconds", type=float, default=5.0)
    group.add_argument(
        "--requests-per-minute", type=float, default=300.0, help="pace of the free-plan profile, all users together"
    )
    group.add_argument("--max-neurons", type=float, default=300.0, help="stop before spending more")
    group.add_argument("--max-tokens", type=int, default=0, help="max_tokens of every chat request (0: the set's)")
    group.add_argument("--prompts", default="mix", choices=sorted(PROMPT_SETS), help="prompt set of chat requests")
    group.add_argument("--total-timeout", type=float, default=120.0, help="seconds for a whole request")
    group.add_argument("--stall-timeout", type=float, default=30.0, help="longest allowed gap between chunks")
    group.add_argument("--p95-ttft-ms", type=float, default=0.0, help="threshold (0: none)")
    group.add_argument("--max-error-rate", type=float, default=-1.0, help="threshold (negative: none)")
    group.add_argument("--max-truncation-rate", type=float, default=-1.0, help="threshold (negative: none)")
    group.add_argument("--summary", default="reports/load/summary.json", help="where the LLM summary goes")


def _options_of(environment: Environment) -> Any:
    return environment.parsed_options


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    options = _options_of(environment)
    # One budget for the whole run, shared by every worker process (run.py names its file).
    shared = os.environ.get("WORKERPROBE_LOAD_BUDGET") or tempfile.mktemp(prefix="workerprobe-load-", suffix=".sqlite3")
    STATE["budget"] = Budget(Path(shared), options.max_neurons, CATALOGUE, shares={"load": 1.0})
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("llm_part", _on_part)
    if isinstance(environment.runner, WorkerRunner):
        gevent.spawn(_ship_parts, environment)
    if not isinstance(environment.runner, WorkerRunner):
        model = CATALOGUE.model(options.chat_model)
        worst = model.neurons(200, 256) if model else float("nan")
        print(
            f"workerprobe load: profile {options.load_profile}, up to {options.load_users} users for "
            f"{options.load_seconds:g} s; a chat request costs at most ~{worst:.2f} neurons; the run "
            f"stops before {options.max_neurons:g} neurons",
            flush=True,
        )


def _on_part(environment: Environment, msg: Any, **_: Any) -> None:
    COLLECTOR.merge(msg.data)


def _ship_parts(environment: Environment) -> None:
    """Workers send what they measured to the master every second (and at the end)."""
    while True:
        gevent.sleep(1.0)
        _flush(environment)


def _flush(environment: Environment) -> None:
    if isinstance(environment.runner, WorkerRunner) and COLLECTOR.requests:
        environment.runner.send_message("llm_part", COLLECTOR.part())
        COLLECTOR.clear()


@events.test_stop.add_listener
def _stop(environment: Environment, **_: Any) -> None:
    _flush(environment)


@events.quitting.add_listener
def _report(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    options = _options_of(environment)
    summary = COLLECTOR.summary() | {"stop_reason": STATE["stop_reason"], "profile": options.load_profile}
    breaches = _breaches(options, summary)
    summary["thresholds_breached"] = breaches
    out = Path(options.summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    from workerprobe.loadkit.plots import plot_all

    plot_all(COLLECTOR, out.parent)
    ttft = summary["ttft_s"] or {}
    print(
        f"workerprobe load: {summary['requests']} LLM requests, error rate {summary['error_rate']:.3f}, "
        f"p50/p95 TTFT {1000 * ttft.get('p50', 0):.1f}/{1000 * ttft.get('p95', 0):.1f} ms, truncation rate "
        f"{summary['truncation_rate']:.3f}, neurons ~{summary['neurons']:.2f}; summary in {out}",
        flush=True,
    )
    if STATE["stop_reason"]:
        print(f"workerprobe load: stopped early: {STATE['stop_reason']}", flush=True)
    for breach in breaches:
        print(f"workerprobe load: THRESHOLD BREACHED: {breach}", flush=True)
    if breaches or STATE["stop_reason"] == "daily allocation spent":
        environment.process_exit_code = 1


def _breaches(options: Any, summary: dict[str, Any]) -> list[str]:
    out = []
    ttft = summary["ttft_s"]
    if options.p95_ttft_ms > 0 and ttft and ttft["p95"] * 1000 > options.p95_ttft_ms:
        out.append(f"p95 TTFT {ttft['p95'] * 1000:.1f} ms > {options.p95_ttft_ms:g} ms")
    if options.max_error_rate >= 0 and summary["error_rate"] > options.max_error_rate:
        out.append(f"error rate {summary['error_rate']:.3f} > {options.max_error_rate:g} ({summary['failures']})")
    if options.max_truncation_rate >= 0 and summary["truncation_rate"] > options.max_truncation_rate:
        out.append(f"truncation rate {summary['truncation_rate']:.3f} > {options.max_truncation_rate:g}")
    if summary["neurons"] > options.max_neurons:
        out.append(f"neurons {summary['neurons']:.2f} > {options.max_neurons:g}")
    return out


class Shape(LoadTestShape):
    """The profile named by --load-profile (see shapes.py)."""

    GRACE_S = 15.0

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options  # type: ignore[union-attr]
        p = Plan(options.load_users, options.load_seconds, options.step, options.step_seconds)
        t = self.get_run_time()
        planned = plan(options.load_profile, p, t)
        if planned is not None:
            return planned
        # The plan is over: let every user finish the request it has in flight (so that what the
        # upstream served is measured too), then stop.
        if self.runner.user_count > 0 and t < options.load_seconds + self.GRACE_S:  # type: ignore[union-attr]
            return 0, 1000.0
        return None


class LLMUser(HttpUser):
    abstract = True

    def wait_time(self) -> float:
        options = _options_of(self.environment)
        if options.load_profile == "free-plan":
            # 300 text-generation requests a minute in total (by default), shared by the users running now.
            users = max(1, self.environment.runner.user_count if self.environment.runner else 1)
            return constant_throughput(options.requests_per_minute / 60.0 / users)(self)
        return 0.0

    def on_start(self) -> None:
        self.options = _options_of(self.environment)
        self.headers = {"Authorization": f"Bearer {self.options.api_key}", "Content-Type": "application/json"}
        self.turn = 0
        self.http = requests.Session()  # the measured LLM calls; Locust's session times streams to headers

    def on_stop(self) -> None:
        self.http.close()

    # -- the measured call -------------------------------------------------------------------

    def _reserve(self, body: dict[str, Any]) -> Hold | None:
        budget: Budget = STATE["budget"]
        try:
            return budget.reserve(body, self.options.chat_model)
        except Exhausted as exc:
            self._halt(f"neuron budget: {exc}")
            return None

    def _halt(self, reason: str) -> None:
        if STATE["stop_reason"] is None:
            STATE["stop_reason"] = reason
            print(f"workerprobe load: stopping: {reason}", flush=True)
        if self.environment.runner is not None:
            gevent.spawn(self.environment.runner.quit)
        raise gevent.GreenletExit

    def _failure(self, name: str, start: float, cause: Cause, detail: str, wait: float = 0.0) -> None:
        COLLECTOR.fail(cause)
        self.environment.events.request.fire(
            request_type="POST",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=Exception(f"{cause}: {detail[:200]}"),
            context={},
        )
        if cause == "daily_quota":
            self._halt("daily allocation spent")
        if wait > 0:
            gevent.sleep(min(wait, 60.0))  # back off as asked

    def chat(self, stream: bool) -> None:
        prompts = PROMPT_SETS[self.options.prompts]
        prompt, limit = prompts[self.turn % len(prompts)]
        self.turn += 1
        if self.options.max_tokens > 0:
            limit = self.options.max_tokens
        body: dict[str, Any] = {"model": self.options.chat_model, "messages": [{"role": "user", "content": prompt}]}
        if limit is not None:
            body["max_tokens"] = limit
        if self.options.prompts == "repeated":
            body["temperature"] = 0
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        reserved = self._reserve(body)
        if reserved is None:
            return
        name = "chat (stream)" if stream else "chat"
        start = time.perf_counter()
        try:
            # Past Locust's HttpSession, which would time a stream to its headers: the request
            # event below carries the end-to-end time instead.
            response = self.http.request(
                "POST",
                f"{self.host}/v1/chat/completions",
                data=orjson.dumps(body),
                headers=self.headers,
                stream=True,
                timeout=(10, self.options.stall_timeout),
            )
        except Exception as exc:  # connection refused or reset before any answer
            STATE["budget"].settle(reserved, body["model"], 599, None)
            self._failure(name, start, "upstream_5xx", repr(exc), wait=1.0)
            return
        with response:
            meter = StreamMeter(start)
            raw = bytearray()
            cut: Cause | None = None
            try:
                for chunk in response.iter_content(chunk_size=None):
                    now = time.perf_counter()
                    raw += chunk
                    meter.feed(chunk, now)
                    if now - start > self.options.total_timeout:
                        cut = "timeout_total"
                        break
            except Exception as exc:
                cut = "timeout_stall" if "timed out" in repr(exc).lower() else "cut_stream"
        end = time.perf_counter()
        if response.status_code != 200:
            payload = _json(bytes(raw))
            STATE["budget"].settle(reserved, body["model"], response.status_code, None)
            retry = float(response.headers.get("retry-after") or 0)
            self._failure(name, start, classify(response.status_code, payload), str(payload), retry)
            return
        sample = meter.finish(end) if stream else _plain_sample(meter, bytes(raw), start, end)
        if stream and cut is None:
            if meter.error is not None:
                cut = "upstream_5xx"
            elif meter.malformed:
                cut = "malformed"
            elif not meter.done:
                cut = "cut_stream"
        if cut is not None:
            STATE["budget"].settle(reserved, body["model"], 200, None)
            self._failure(name, start, cut, f"after {len(raw)} bytes")
            return
        self.environment.events.request.fire(
            request_type="POST",
            name=name,
            response_time=(end - start) * 1000,
            response_length=len(raw),
            exception=None,
            context={},
        )
        usage = {"prompt_tokens": sample.prompt_tokens, "completion_tokens": sample.output_tokens}
        STATE["budget"].settle(reserved, body["model"], 200, usage)
        users = self.environment.runner.user_count if self.environment.runner else 1
        COLLECTOR.add(sample, body["model"], limit, users, _neurons(body["model"], usage))

    def embed(self) -> None:
        body = {"model": self.options.embedding_model, "input": ["The food was delicious.", "The service was slow."]}
        reserved = self._reserve(body)
        if reserved is None:
            return
        start = time.perf_counter()
        with self.client.post(
            "/v1/embeddings", data=orjson.dumps(body), headers=self.headers, name="embeddings", catch_response=True
        ) as response:
            if response.status_code != 200:
                STATE["budget"].settle(reserved, body["model"], response.status_code, None)
                response.failure(f"HTTP {response.status_code}")
                self._failure(
                    "embeddings",
                    start,
                    classify(response.status_code, _json(response.content)),
                    response.text,
                    float(response.headers.get("retry-after") or 0),
                )
                return
            usage = (_json(response.content) or {}).get("usage") or {}
            STATE["budget"].settle(reserved, body["model"], 200, usage)

    def lifecycle(self) -> None:
        """An assistant, a thread, a run polled to its end, the reply read back, then cleanup."""

        def post(path: str, body: dict[str, Any], name: str) -> dict[str, Any] | None:
            with self.client.post(
                path, data=orjson.dumps(body), headers=self.headers, name=name, catch_response=True
            ) as r:
                if r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}")
                    return None
                return _json(r.content)

        run_body = {"max_completion_tokens": 32}
        if self._reserve({"model": self.options.chat_model, "max_tokens": 32}) is None:
            return
        assistant = post("/v1/assistants", {"model": self.options.chat_model}, "assistants create")
        thread = post("/v1/threads", {"messages": [{"role": "user", "content": "What is 6 * 7?"}]}, "threads create")
        if not assistant or not thread:
            return
        run = post(f"/v1/threads/{thread['id']}/runs", {"assistant_id": assistant["id"], **run_body}, "runs create")
        deadline = time.perf_counter() + self.options.total_timeout
        while run and run.get("status") in ("queued", "in_progress") and time.perf_counter() < deadline:
            gevent.sleep(0.1)
            with self.client.get(
                f"/v1/threads/{thread['id']}/runs/{run['id']}",
                headers=self.headers,
                name="runs retrieve",
                catch_response=True,
            ) as r:
                run = _json(r.content) if r.status_code == 200 else None
        self.client.get(f"/v1/threads/{thread['id']}/messages", headers=self.headers, name="messages list")
        self.client.delete(f"/v1/threads/{thread['id']}", headers=self.headers, name="threads delete")
        self.client.delete(f"/v1/assistants/{assistant['id']}", headers=self.headers, name="assistants delete")


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _neurons(model: str, usage: dict[str, Any]) -> float:
    found = CATALOGUE.model(model)
    if found is None:
        return 0.0
    return found.neurons(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _plain_sample(meter: StreamMeter, content: bytes, start: float, end: float) -> Any:
    """A non-streamed answer: end to end, its usage and finish reason (no TTFT)."""
    from workerprobe.loadkit.timing import Sample

    body = _json(content) or {}
    usage = body.get("usage") or {}
    choice = (body.get("choices") or [{}])[0]
    return Sample(
        e2e=end - start,
        ttfb=None if meter.first_byte is None else meter.first_byte - start,
        output_tokens=int(usage.get("completion_tokens") or 0),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        finish_reason=choice.get("finish_reason"),
    )


class ChatUser(LLMUser):
    @tag("chat")
    @task
    def plain(self) -> None:
        self.chat(stream=False)


class StreamUser(LLMUser):
    @tag("stream")
    @task
    def streamed(self) -> None:
        self.chat(stream=True)


class EmbeddingsUser(LLMUser):
    @tag("embeddings")
    @task
    def embeddings(self) -> None:
        self.embed()


class LifecycleUser(LLMUser):
    @tag("lifecycle")
    @task
    def assistant_run(self) -> None:
        self.lifecycle()


class MixUser(LLMUser):
    @tag("mix")
    @task(5)
    def streamed(self) -> None:
        self.chat(stream=True)

    @tag("mix")
    @task(3)
    def plain(self) -> None:
        self.chat(stream=False)

    @tag("mix")
    @task(2)
    def embeddings(self) -> None:
        self.embed()

    @tag("mix")
    @task(1)
    def assistant_run(self) -> None:
        self.lifecycle()
