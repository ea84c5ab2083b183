"""workerprobe load profiles: LLM latency (TTFB, TTFT, TPOT, ITL, end to end), truncation,
timeouts and failure causes against an OpenAI-compatible gateway, within a neuron budget.

Run through `load/run.py` (or `make load`), which picks the target and writes the reports.
User classes (choose by name or tag): ChatUser (chat), StreamUser (stream), EmbeddingsUser
(embeddings), LifecycleUser (lifecycle), MixUser (mix). The LLM metrics are kept out of Locust's
request statistics (exact percentiles, their own names) and written to reports/load/summary.json.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import orjson
from locust import HttpUser, LoadTestShape, events, tag, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit import report
from workerprobe.loadkit.causes import FATAL
from workerprobe.loadkit.client import CHAT, RESPONSES, LLMClient, Result, json_or_none
from workerprobe.loadkit.pacing import Pacer
from workerprobe.loadkit.prompts import PROMPT_SETS
from workerprobe.loadkit.shapes import PROFILES, Plan, plan
from workerprobe.loadkit.summary import Collector
from workerprobe.suite import operations
from workerprobe.suite.budget import Budget, Exhausted

COLLECTOR = Collector()
RUNS = operations.load().by_label["POST /v1/threads/{thread_id}/runs"]
CATALOGUE = load_catalogue()
STATE: dict[str, Any] = {"budget": None, "stop_reason": None, "pacer": None}
FATAL_AFTER = 10  # requests, all refused and none answered, before the run stops


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("workerprobe")
    group.add_argument("--api-key", default=os.environ.get("API_KEY", ""), help="bearer key of the target")
    group.add_argument("--chat-model", default=CATALOGUE.default("text-generation").name)
    group.add_argument("--embedding-model", default=CATALOGUE.default("text-embeddings").name)
    group.add_argument("--load-profile", default="steady", choices=PROFILES, help="load shape (shapes.py)")
    group.add_argument("--load-users", type=int, default=8, help="users at the top of the shape")
    group.add_argument("--load-seconds", type=float, default=20.0, help="length of the shape")
    group.add_argument("--step", type=int, default=4, help="users added per step (profile step)")
    group.add_argument("--step-seconds", type=float, default=5.0)
    group.add_argument(
        "--requests-per-minute", type=float, default=300.0, help="pace of the free-plan profile, all users together"
    )
    group.add_argument(
        "--pace-processes", type=int, default=1, help="processes sharing the free-plan pace (Locust workers)"
    )
    group.add_argument("--max-neurons", type=float, default=300.0, help="stop before spending more")
    group.add_argument("--max-tokens", type=int, default=0, help="max_tokens of every chat request (0: the set's)")
    group.add_argument("--prompts", default="mix", choices=sorted(PROMPT_SETS), help="prompt set of chat requests")
    group.add_argument("--total-timeout", type=float, default=120.0, help="seconds for a whole request")
    group.add_argument("--stall-timeout", type=float, default=30.0, help="longest allowed gap between chunks")
    group.add_argument("--p95-ttft-ms", type=float, default=0.0, help="threshold (0: none)")
    group.add_argument("--max-error-rate", type=float, default=0.01, help="threshold (negative: none)")
    group.add_argument("--max-truncation-rate", type=float, default=-1.0, help="threshold (negative: none)")
    group.add_argument("--summary", default="reports/load/summary.json", help="where the LLM summary goes")
    group.add_argument("--target-name", default="", help="the target, as the summary names it")
    group.add_argument(
        "--allow-busy-generator", action="store_true", help="exit 0 even when the load generator was the bottleneck"
    )
    group.add_argument("--progress-s", type=float, default=5.0, help="seconds between progress lines (0: none)")
    group.add_argument(
        "--emulator-trace",
        default="",
        help="the emulator's root URL: compare the measured TTFT, TPOT and ITL with its own clock",
    )


def _options_of(environment: Environment) -> Any:
    return environment.parsed_options


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    options = _options_of(environment)
    # One budget for the whole run, shared by every worker process (run.py names its file).
    shared = os.environ.get("WORKERPROBE_LOAD_BUDGET") or tempfile.mktemp(prefix="workerprobe-load-", suffix=".sqlite3")
    STATE["budget"] = Budget(Path(shared), options.max_neurons, CATALOGUE, shares={"load": 1.0})
    STATE["cpu_started"] = time.process_time()
    if not isinstance(environment.runner, WorkerRunner):
        STATE["started"] = time.time()
        model = CATALOGUE.model(options.chat_model)
        worst = model.neurons(200, 256) if model else float("nan")
        budget = (
            f"the run stops before {options.max_neurons:g} neurons"
            if options.max_neurons != float("inf")
            else "no neuron budget (the embedded emulator costs nothing)"
        )
        print(
            f"workerprobe load: profile {options.load_profile}, up to {options.load_users} users for "
            f"{options.load_seconds:g} s; a chat request costs at most ~{worst:.2f} neurons; {budget}",
            flush=True,
        )
        if options.progress_s > 0:
            gevent.spawn(_progress, environment, options.progress_s)
        gevent.spawn(_levels, environment)


def _levels(environment: Environment) -> None:
    """Seconds spent at each number of running users (throughput against concurrency)."""
    while True:
        gevent.sleep(1.0)
        users = environment.runner.user_count if environment.runner else 0
        if users:
            COLLECTOR.level_seconds[users] = COLLECTOR.level_seconds.get(users, 0.0) + 1.0


def _progress(environment: Environment, every: float) -> None:
    """A line every few seconds while the run lasts: users, LLM requests a second, TTFT p50,
    failures by cause (what the master has heard from its workers, in distributed mode)."""
    last_requests, last_time = 0, time.time()
    while True:
        gevent.sleep(every)
        now = time.time()
        done = COLLECTOR.requests
        rate = (done - last_requests) / (now - last_time) if now > last_time else 0.0
        last_requests, last_time = done, now
        ttft = sorted(COLLECTOR.ttft)
        p50 = f"{1000 * ttft[len(ttft) // 2]:.0f} ms" if ttft else "n/a"
        failed = ", ".join(f"{c} {n}" for c, n in COLLECTOR.causes.most_common()) or "none"
        users = environment.runner.user_count if environment.runner else 0
        print(
            f"  {now - STATE['started']:5.0f} s  users {users:3d}  {rate:6.1f} req/s  TTFT p50 {p50}  "
            f"requests {done}  failed: {failed}",
            flush=True,
        )


@events.request.add_listener
def _collect(context: dict[str, Any] | None = None, **_: Any) -> None:
    """What the LLM client measured, from each request event's context."""
    context = context or {}
    if "llm_sample" in context:
        usage = {
            "prompt_tokens": context["llm_sample"].prompt_tokens,
            "completion_tokens": context["llm_sample"].output_tokens,
        }
        neurons = _neurons(context["model"], usage)
        COLLECTOR.add(context["llm_sample"], context["model"], context["limit"], context["users"], neurons)
    elif "llm_cause" in context:
        COLLECTOR.fail(context["llm_cause"])


@events.report_to_master.add_listener
def _to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """A worker's measurements ride on Locust's own reports to the master (every few seconds)."""
    used = time.process_time()
    COLLECTOR.cpu_s += used - STATE.get("cpu_reported", STATE.get("cpu_started", 0.0))
    STATE["cpu_reported"] = used
    if COLLECTOR.requests or COLLECTOR.cpu_s:
        data["llm_part"] = COLLECTOR.part()
        COLLECTOR.clear()


@events.worker_report.add_listener
def _from_worker(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if "llm_part" in data:
        COLLECTOR.merge(data["llm_part"])


@events.quitting.add_listener
def _report(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    code = report.conclude(_options_of(environment), COLLECTOR, STATE, environment.host)
    if code is not None:
        environment.process_exit_code = code


class Shape(LoadTestShape):
    """The profile named by --load-profile (see shapes.py)."""

    GRACE_S = 15.0

    def tick(self) -> tuple[int, float] | None:
        options: Any = self.runner.environment.parsed_options  # type: ignore[union-attr]
        p = Plan(options.load_users, options.load_seconds, options.step, options.step_seconds)
        t = self.get_run_time()
        if STATE["stop_reason"] is not None:
            return None  # a user stopped the run (budget, daily allocation, refusals)
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
        if _options_of(self.environment).load_profile == "free-plan":
            return self._pace()
        return 0.0

    def _pace(self) -> float:
        """Seconds until this user's next request is due on the process's one schedule (the
        free plan's requests a minute, all users together; see pacing.py). How late it really
        starts is the schedule delay: the generator keeping up, or not."""
        options = _options_of(self.environment)
        if STATE["pacer"] is None:
            STATE["pacer"] = Pacer(options.requests_per_minute / 60.0, options.pace_processes)
        pacer: Pacer = STATE["pacer"]
        self._due = pacer.slot()
        return max(self._due - time.perf_counter(), 0.0)

    def _scheduled(self) -> None:
        """At the start of a paced request: how late it is against when it was due."""
        due = getattr(self, "_due", None)
        if due is not None:
            COLLECTOR.schedule_delay.append(max(time.perf_counter() - due, 0.0))

    def on_start(self) -> None:
        self.options = _options_of(self.environment)
        self.headers = {"Authorization": f"Bearer {self.options.api_key}", "Content-Type": "application/json"}
        self.turn = 0
        self.llm = LLMClient(
            str(self.host),
            self.options.api_key,
            self.environment.events,
            STATE["budget"],
            self.options.total_timeout,
            self.options.stall_timeout,
        )
        if self.options.load_profile == "free-plan":
            gevent.sleep(self._pace())  # the first request is paced too: no burst as users start

    def on_stop(self) -> None:
        self.llm.close()

    def _halt(self, reason: str) -> None:
        if STATE["stop_reason"] is None:
            STATE["stop_reason"] = reason
            print(f"workerprobe load: stopping: {reason}", flush=True)
        # In one process the shape ends the run at its next tick (one stop of every user: a quit
        # beside the shape's own stop stops users twice, and Locust raises "This should never
        # happen"). A worker quits, once; its master sees it go.
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner) and not STATE.get("quitting"):
            STATE["quitting"] = True
            gevent.spawn(runner.quit)
        raise StopUser

    def _after(self, result: Result) -> None:
        if result.cause is None and result.refused is None:
            STATE["answered"] = STATE.get("answered", 0) + 1
        elif result.cause in FATAL:
            STATE["refused"] = STATE.get("refused", 0) + 1
            if not STATE.get("answered") and STATE["refused"] >= FATAL_AFTER:
                what = "the key was refused (401/403)" if result.cause == "auth" else "nothing answered at the target"
                STATE["unusable"] = True
                self._halt(f"the first {STATE['refused']} requests all failed: {what}; check the URL and API_KEY")
        if result.refused is not None:
            self._halt(f"neuron budget: {result.refused}")
        if result.cause == "daily_quota":
            self._halt("daily allocation spent")
        if result.retry_after > 0:
            gevent.sleep(min(result.retry_after, 60.0))  # back off as asked

    def _next_prompt(self) -> tuple[str, int | None, dict[str, Any]]:
        """The next prompt of the set, its token limit, and the sampling the set asks for."""
        prompts = PROMPT_SETS[self.options.prompts]
        prompt, limit = prompts[self.turn % len(prompts)]
        self.turn += 1
        if self.options.max_tokens > 0:
            limit = self.options.max_tokens
        return prompt, limit, {"temperature": 0} if self.options.prompts == "repeated" else {}

    def _send(self, body: dict[str, Any], name: str, limit: int | None, operation: Any = CHAT) -> None:
        users = self.environment.runner.user_count if self.environment.runner else 1
        self._scheduled()
        self._after(self.llm.chat(body, name, limit, users, operation))

    def chat(self, stream: bool) -> None:
        prompt, limit, sampling = self._next_prompt()
        body: dict[str, Any] = {"model": self.options.chat_model, "messages": [{"role": "user", "content": prompt}]}
        body |= sampling
        if limit is not None:
            body["max_tokens"] = limit
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        self._send(body, "chat (stream)" if stream else "chat", limit)

    def respond(self, stream: bool) -> None:
        """One response (the Responses API) from the same prompts: TTFT at its first text delta,
        truncation read from `status: incomplete` (client.py, timing.py)."""
        prompt, limit, sampling = self._next_prompt()
        body: dict[str, Any] = {"model": self.options.chat_model, "input": prompt, "store": False, **sampling}
        if limit is not None:
            limit = body["max_output_tokens"] = max(limit, 16)  # OpenAI's least
        if stream:
            body["stream"] = True
        self._send(body, "responses (stream)" if stream else "responses", limit, RESPONSES)

    def embed(self) -> None:
        body = {"model": self.options.embedding_model, "input": ["The food was delicious.", "The service was slow."]}
        self._after(self.llm.embed(body))

    def lifecycle(self) -> None:
        """An assistant, a thread, a run polled to its end, the reply read back, then cleanup."""

        def post(path: str, body: dict[str, Any], name: str) -> dict[str, Any] | None:
            with self.client.post(
                path, data=orjson.dumps(body), headers=self.headers, name=name, catch_response=True
            ) as r:
                if r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}")
                    return None
                found: dict[str, Any] | None = json_or_none(r.content)
                return found

        run_body = {"max_completion_tokens": 32}
        assert RUNS.generates is not None and RUNS.usage is not None
        try:
            hold = STATE["budget"].reserve(
                {"model": self.options.chat_model, **run_body}, self.options.chat_model, RUNS.generates
            )
        except Exhausted as exc:
            self._halt(f"neuron budget: {exc}")
        assistant = post("/v1/assistants", {"model": self.options.chat_model}, "assistants create")
        thread = post("/v1/threads", {"messages": [{"role": "user", "content": "What is 6 * 7?"}]}, "threads create")
        if not assistant or not thread:
            STATE["budget"].release(hold)
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
                run = json_or_none(r.content) if r.status_code == 200 else None
        STATE["budget"].settle(hold, self.options.chat_model, 200, RUNS.usage.tokens(run))
        self.client.get(f"/v1/threads/{thread['id']}/messages", headers=self.headers, name="messages list")
        self.client.delete(f"/v1/threads/{thread['id']}", headers=self.headers, name="threads delete")
        self.client.delete(f"/v1/assistants/{assistant['id']}", headers=self.headers, name="assistants delete")


def _neurons(model: str, usage: dict[str, Any]) -> float:
    found = CATALOGUE.model(model)
    if found is None:
        return 0.0
    return found.neurons(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


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


class ResponsesUser(LLMUser):
    """Clients of the Responses API (the Agents SDK, Codex): streamed responses, one in four whole."""

    @tag("responses")
    @task(3)
    def streamed(self) -> None:
        self.respond(stream=True)

    @tag("responses")
    @task(1)
    def plain(self) -> None:
        self.respond(stream=False)


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
