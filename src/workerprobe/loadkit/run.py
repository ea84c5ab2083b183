"""`workerprobe load`: a load profile, headless, against one target; the reports in
reports/<run id>/load/ (reports/latest points at the newest run).

The target is a URL (or CLOUDFLARE_WORKER_URL and API_KEY, environment or .env), or, with
neither, the embedded gateway in front of the emulator (with the emulator's latency model, and
its free-plan limits when asked). Load goes to that one host only, bounded in time and users.
Exit 0 when every threshold holds, 1 when one is broken (or the daily allocation ran out), 2 when
the run could not measure (a refused key, nothing listening).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx

from workerprobe.catalogue import load as load_catalogue
from workerprobe.clihelp import Help
from workerprobe.procs import free_port, gateway_over_emulator
from workerprobe.suite.target import TargetError, configured


def _upstream_count(emulator_url: str, summary: Path) -> None:
    """Adds what the emulator served to the summary: a ground truth for the client's counts. The
    emulator meters per UTC day, so a run across midnight is read from both days."""
    today = dt.datetime.now(dt.UTC).date()
    accounts = [
        account
        for day in (today - dt.timedelta(days=1), today)
        for account in httpx.get(f"{emulator_url}/__emulator/usage", params={"date": day.isoformat()}, timeout=10)
        .json()["accounts"]
        .values()
    ]
    served = sum(account["requests"] for account in accounts)
    neurons = sum(account["neurons"] for account in accounts)
    if summary.exists():
        data = json.loads(summary.read_text())
        data["upstream_requests_served"] = served
        data["upstream_neurons"] = neurons
        errors: dict[str, int] = {}
        for account in accounts:
            for code, n in account["errors"].items():
                errors[code] = errors.get(code, 0) + n
        data["upstream_errors"] = errors
        summary.write_text(json.dumps(data, indent=2))
    print(f"the emulator served {served} requests for {neurons:.2f} neurons", flush=True)


def _embedded(stack: ExitStack, args: argparse.Namespace) -> tuple[str, str, str]:
    env = {"WORKERPROBE_EMULATOR_LATENCY": args.emulator_latency}
    if args.ttft_ms is not None:
        env["WORKERPROBE_EMULATOR_TTFT_MS"] = str(args.ttft_ms)
    if args.tpot_ms is not None:
        env["WORKERPROBE_EMULATOR_TPOT_MS"] = str(args.tpot_ms)
    if args.free_plan:
        env["WORKERPROBE_EMULATOR_FREE_PLAN"] = "true"
    if args.daily_neurons is not None:
        env["WORKERPROBE_EMULATOR_DAILY_NEURONS"] = str(args.daily_neurons)
    if args.fault_rates:
        env["WORKERPROBE_EMULATOR_FAULT_RATES"] = args.fault_rates
    settings = {}
    for setting in args.gateway_env:  # NAME=VALUE, with or without the WORKERPROBE_GATEWAY_ prefix
        name, _, value = setting.partition("=")
        settings[name.removeprefix("WORKERPROBE_GATEWAY_")] = value
    command: tuple[list[str], str] = (
        # a gateway built with seeded defects (workerprobe.suite.defects)
        (["--defects", json.dumps(args.gateway_defects)], "workerprobe.suite.defects")
        if args.gateway_defects
        else (["gateway"], "workerprobe")
    )
    server, emulator = stack.enter_context(
        gateway_over_emulator(
            api_key="sk-load",
            token="load",
            account="load",
            emulator_env=env,
            cpu=args.server_cpu,
            gateway=command,
            **settings,
        )
    )
    return server.url, "sk-load", emulator.url


EXAMPLES = """examples:
  workerprobe load                                   the embedded default, profile steady
  workerprobe load --profile step --users 16 --seconds 60 --classes StreamUser
  workerprobe load https://my-worker.example.workers.dev/v1 --key sk-... --max-neurons 200
  workerprobe load --p95-ttft-ms 800 --max-error-rate 0        a CI gate
  workerprobe load --workers 2 -- --loglevel DEBUG               options after -- go to Locust
"""

CLASSES = ["ChatUser", "StreamUser", "ResponsesUser", "EmbeddingsUser", "LifecycleUser", "MixUser"]
DEPLOYED_NEURONS = 300.0  # a deployed target's default budget: 3% of the free plan's day


def parser() -> argparse.ArgumentParser:
    from workerprobe.loadkit.prompts import PROMPT_SETS
    from workerprobe.loadkit.shapes import PROFILES

    p = argparse.ArgumentParser(
        prog="workerprobe load",
        usage="workerprobe load [URL] [--key KEY] [--profile P] [--users N] [--seconds S] [options] [-- LOCUST]",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=Help,
    )
    p.add_argument(
        "url",
        nargs="?",
        help="the target's base URL ending in /v1 (default: CLOUDFLARE_WORKER_URL, else the embedded default)",
    )
    p.add_argument("--key", help="the target's API key (default: API_KEY)")
    shape = p.add_argument_group("the load")
    shape.add_argument("--profile", default="steady", choices=PROFILES, help="load shape")
    shape.add_argument("--users", type=_positive_int, default=8, help="users at the top of the shape")
    shape.add_argument("--seconds", type=_positive_float, default=20.0, help="length of the shape")
    shape.add_argument(
        "--classes",
        nargs="+",
        default=["MixUser"],
        choices=CLASSES,
        metavar="CLASS",
        help=f"user classes, of {', '.join(CLASSES)}",
    )
    shape.add_argument("--step", type=_positive_int, default=4, help="users added per step (profile step)")
    shape.add_argument("--step-seconds", type=_positive_float, default=5.0, help="seconds per step (profile step)")
    shape.add_argument(
        "--requests-per-minute",
        type=_positive_float,
        default=300.0,
        help="pace of the free-plan profile, all users together",
    )
    shape.add_argument("--workers", type=int, default=0, help="Locust worker processes (0: one process)")
    asked = p.add_argument_group("the requests")
    models = load_catalogue()
    asked.add_argument("--chat-model", default=models.default("text-generation").name, help="model of chat requests")
    asked.add_argument(
        "--embedding-model", default=models.default("text-embeddings").name, help="model of embedding requests"
    )
    asked.add_argument("--prompts", default="mix", choices=sorted(PROMPT_SETS), help="prompt set of chat requests")
    asked.add_argument(
        "--max-tokens", type=int, default=0, help="max_tokens of every chat request (0: the prompt set's)"
    )
    asked.add_argument("--total-timeout", type=_positive_float, default=120.0, help="seconds for a whole request")
    asked.add_argument(
        "--stall-timeout", type=_positive_float, default=30.0, help="longest allowed gap between chunks, seconds"
    )
    gate = p.add_argument_group("thresholds (a broken one exits 1)")
    gate.add_argument(
        "--max-error-rate", type=float, default=0.01, help="failed requests / requests (negative: no limit)"
    )
    gate.add_argument("--p95-ttft-ms", type=float, default=0.0, help="p95 time to first token, ms (0: no limit)")
    gate.add_argument(
        "--max-truncation-rate",
        type=float,
        default=-1.0,
        help="answers cut at max_tokens / answers (negative: no limit)",
    )
    gate.add_argument(
        "--max-neurons",
        type=float,
        help=f"stop before spending more (default: {DEPLOYED_NEURONS:g} against a deployed target, "
        "no limit against the embedded one)",
    )
    gate.add_argument(
        "--allow-busy-generator",
        action="store_true",
        help="exit 0 even when the load generator was the bottleneck (its CPU over 90%%, or paced requests "
        "starting over 10 ms late, median)",
    )
    emb = p.add_argument_group("the embedded default (no URL)")
    emb.add_argument(
        "--embedded", action="store_true", help="ignore .env and CLOUDFLARE_WORKER_URL: load the embedded default"
    )
    emb.add_argument(
        "--emulator-latency", default="realistic", choices=["zero", "realistic"], help="the emulator's latency preset"
    )
    emb.add_argument("--ttft-ms", type=float, help="the emulator's time to first token, ms (default: the preset's)")
    emb.add_argument("--tpot-ms", type=float, help="the emulator's time per output token, ms (default: the preset's)")
    emb.add_argument("--free-plan", action="store_true", help="the emulator with its free-plan limits")
    emb.add_argument("--daily-neurons", type=float, help="the emulator's daily allocation (metering on)")
    emb.add_argument("--fault-rates", help="emulator faults, e.g. '{\"3040\": 0.1}'")
    emb.add_argument("--server-cpu", type=int, help="pin the emulator and gateway to this core")
    emb.add_argument("--gateway-defects", nargs="*", default=[], help="seeded defects (selftest only)")
    emb.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the embedded gateway, e.g. free_plan=true (repeatable)",
    )
    p.add_argument(
        "--report",
        default="reports",
        help="the reports' folder: this run writes to <folder>/<run id>/load/, and <folder>/latest points at it",
    )
    p.add_argument("--out", help="one folder for this run's reports, instead of <--report>/<run id>/load/")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value:g}")
    return value


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in given:  # the rest goes to Locust
        extra, given = given[given.index("--") + 1 :], given[: given.index("--")]
    args = parser().parse_args(given)  # a bad flag stops here, before anything starts
    if args.fault_rates:
        try:
            json.loads(args.fault_rates)
        except json.JSONDecodeError as exc:
            print(f"workerprobe load: --fault-rates is not JSON ({exc}); e.g. '{{\"3040\": 0.1}}'", file=sys.stderr)
            return 2
    if args.url:
        os.environ["CLOUDFLARE_WORKER_URL"] = args.url
    if args.key:
        os.environ["API_KEY"] = args.key

    try:
        chosen = None if args.embedded else configured()
    except TargetError as exc:
        print(f"workerprobe load: {exc}; exit 2", file=sys.stderr)
        return 2
    if args.out is None:
        from workerprobe.runs import new_run_id, open_run_folder

        out = open_run_folder(Path(args.report), new_run_id()) / "load"
    else:
        out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        target = chosen
        emulator_url = None
        if target is not None:
            host, key = target.root, target.api_key
            print(f"load target: {target.describe()}", flush=True)
        else:
            host, key, emulator_url = _embedded(stack, args)
            print(f"load target: the embedded default (gateway at {host}, emulator upstream)", flush=True)
        common = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(Path(__file__).resolve().parent / "locustfile.py"),
            "--host",
            host,
            "--api-key",
            key,
            "--load-profile",
            args.profile,
            "--load-users",
            str(args.users),
            "--load-seconds",
            str(args.seconds),
            "--summary",
            str(out / "summary.json"),
            "--target-name",
            target.describe() if target is not None else "the embedded default",
            "--chat-model",
            args.chat_model,
            "--embedding-model",
            args.embedding_model,
            "--prompts",
            args.prompts,
            "--max-tokens",
            str(args.max_tokens),
            "--total-timeout",
            str(args.total_timeout),
            "--stall-timeout",
            str(args.stall_timeout),
            "--step",
            str(args.step),
            "--step-seconds",
            str(args.step_seconds),
            "--requests-per-minute",
            str(args.requests_per_minute),
            "--pace-processes",
            str(max(args.workers, 1)),
            "--max-error-rate",
            str(args.max_error_rate),
            "--p95-ttft-ms",
            str(args.p95_ttft_ms),
            "--max-truncation-rate",
            str(args.max_truncation_rate),
            *(["--allow-busy-generator"] if args.allow_busy_generator else []),
            "--max-neurons",
            str(args.max_neurons if args.max_neurons is not None else (DEPLOYED_NEURONS if target else "inf")),
            # Users finish the request in flight when the shape ends (workers read this too).
            "--stop-timeout",
            "10",
            # The embedded emulator's own clock: the summary says how far the measurements were off.
            *(["--emulator-trace", emulator_url] if emulator_url else []),
            *extra,
        ]
        run = [
            "--headless",
            "--run-time",
            f"{int(args.seconds) + 15}s",
            "--csv",
            str(out / "locust"),
            "--html",
            str(out / "locust.html"),
            "--only-summary",
            # Failures are counted by cause and judged by the thresholds, not by Locust's default.
            "--exit-code-on-error",
            "0",
            *args.classes,
        ]
        # One neuron budget for the master and every worker: a SQLite file of this run's.
        env = {**os.environ, "WORKERPROBE_LOAD_BUDGET": str(out / "budget.sqlite3")}
        (out / "budget.sqlite3").unlink(missing_ok=True)
        if args.workers:
            port = free_port()
            master = subprocess.Popen(
                [
                    *common,
                    *run,
                    "--master",
                    "--master-bind-host",
                    "127.0.0.1",
                    "--master-bind-port",
                    str(port),
                    "--expect-workers",
                    str(args.workers),
                ],
                env=env,
            )
            workers = [
                subprocess.Popen(
                    [
                        *common,  # the workerprobe options too: each worker opens the run's one budget
                        "--worker",
                        "--master-host",
                        "127.0.0.1",
                        "--master-port",
                        str(port),
                    ],
                    env=env,
                )
                for _ in range(args.workers)
            ]
            try:
                code = master.wait(timeout=args.seconds + 120)
            except subprocess.TimeoutExpired:
                print(f"workerprobe load: the run did not end within {args.seconds + 120:g} s; exit 2", flush=True)
                master.kill()
                code = 2
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        else:
            try:  # bounded as the master is: the run's time, its grace, the report's
                code = subprocess.run([*common, *run], env=env, check=False, timeout=args.seconds + 120).returncode
            except subprocess.TimeoutExpired:
                print(f"workerprobe load: the run did not end within {args.seconds + 120:g} s; exit 2", flush=True)
                code = 2
        if emulator_url is not None:
            _upstream_count(emulator_url, out / "summary.json")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
