"""Run a load profile headless against the selected target and write reports/load/.

The target is the suite's: CLOUDFLARE_WORKER_URL and API_KEY (environment or .env), or, with
neither, the embedded gateway in front of the emulator (with the emulator's latency model, and
its free-plan limits when asked). Load goes to that one host only, bounded in time and users.

    .venv/bin/python load/run.py --profile steady --users 8 --seconds 20 --classes StreamUser
    .venv/bin/python load/run.py --workers 2 ...          (distributed: one master, two workers)

Everything after `--` goes to Locust / the locustfile (thresholds: --p95-ttft-ms,
--max-error-rate, --max-truncation-rate, --max-neurons). Exits non-zero when a threshold is
breached or the daily allocation ran out.
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

from workerprobe.procs import free_port, gateway_over_emulator
from workerprobe.suite.target import configured

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="steady")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--classes", nargs="*", default=["MixUser"], help="user classes (default MixUser)")
    parser.add_argument("--workers", type=int, default=0, help="distributed: number of worker processes")
    parser.add_argument("--out", default=str(ROOT / "reports" / "load"))
    parser.add_argument("--emulator-latency", default="realistic", choices=["zero", "realistic"])
    parser.add_argument("--ttft-ms", type=float)
    parser.add_argument("--tpot-ms", type=float)
    parser.add_argument("--free-plan", action="store_true", help="emulator with its free-plan limits")
    parser.add_argument("--daily-neurons", type=float, help="emulator's daily allocation (metering on)")
    parser.add_argument("--fault-rates", help="emulator faults, e.g. '{\"3040\": 0.1}'")
    parser.add_argument("--embedded", action="store_true", help="ignore .env: load the embedded default")
    parser.add_argument("--server-cpu", type=int, help="pin the embedded emulator and gateway to this core")
    parser.add_argument("--gateway-defects", nargs="*", default=[], help="seeded defects (selftest only)")
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the embedded gateway, e.g. free_plan=true or retry_attempts=3 (repeatable)",
    )
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        target = None if args.embedded else configured()
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
            str(HERE / "locustfile.py"),
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
            code = master.wait(timeout=args.seconds + 120)
            for worker in workers:
                worker.wait(timeout=30)
        else:
            code = subprocess.run([*common, *run], env=env, check=False).returncode
        if emulator_url is not None:
            _upstream_count(emulator_url, out / "summary.json")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
