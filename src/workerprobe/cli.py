"""`workerprobe` command line: the suite (`test`, `clean`), the Workers AI emulator, the reference
gateway and its client keys."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from workerprobe.clihelp import Help
from workerprobe.suite import DEPTHS

if TYPE_CHECKING:
    from workerprobe.settings import GatewaySettings

__all__ = ["main"]


def _emulator(args: argparse.Namespace) -> int:
    from workerprobe.emulator import create_app
    from workerprobe.settings import EmulatorSettings

    overrides: dict[str, object] = {}
    for name in ("host", "port", "latency", "ttft_ms", "tpot_ms", "daily_neurons"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    for flag in ("free_plan", "test_mode"):
        if getattr(args, flag):
            overrides[flag] = True
    settings = EmulatorSettings(**overrides)  # type: ignore[arg-type]
    from workerprobe.server import serve_app

    print(f"workerprobe emulator on http://{settings.host}:{settings.port}/client/v4", file=sys.stderr, flush=True)
    serve_app(create_app(settings), settings.host, settings.port)
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from workerprobe.gateway import create_app
    from workerprobe.procs import serve
    from workerprobe.settings import GatewaySettings

    overrides = {name: getattr(args, name) for name in ("host", "port", "workers") if getattr(args, name) is not None}
    settings = GatewaySettings(**overrides)
    if settings.workers > 1 and not settings.redis_url:
        print(
            f"workerprobe gateway: {settings.workers} workers need their shared state in Redis (the store, the key "
            "rate limits, the budgets): set WORKERPROBE_GATEWAY_REDIS_URL, e.g. redis://127.0.0.1:6379/0",
            file=sys.stderr,
        )
        return 2
    if not settings.api_key:
        print(
            "workerprobe gateway: API_KEY is unset; only keys from `workerprobe api-key create` work", file=sys.stderr
        )
    if settings.upstream_configured:
        _run_gateway(create_app, settings)
        return 0
    # Nothing configured: the embedded default upstream, an emulator on a loopback port.
    with serve(["emulator"], port=args.emulator_port) as emulator:
        settings = settings.model_copy(update={"cf_api_base_url": f"{emulator.url}/client/v4"})
        _run_gateway(create_app, settings)
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of seconds above 0")
    return value


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1 to 64")
    return int(text)


def _run_gateway(create_app: Callable[[GatewaySettings], object], settings: GatewaySettings) -> None:
    print(
        f"workerprobe gateway on http://{settings.host}:{settings.port}/v1 -> {settings.upstream_url}",
        file=sys.stderr,
        flush=True,
    )
    from workerprobe.server import Bounds, serve_app, serve_workers

    bounds = Bounds(
        settings.header_timeout_s, settings.body_timeout_s, settings.idle_timeout_s, settings.max_connections
    )
    if settings.workers > 1:
        # The worker processes read their settings from the environment: what this process chose
        # (the embedded emulator's address) goes there.
        import os

        if settings.cf_api_base_url:
            os.environ["CF_API_BASE_URL"] = settings.cf_api_base_url
        serve_workers("workerprobe.server:gateway_worker", settings.host, settings.port, settings.workers, bounds)
        return
    serve_app(create_app(settings), settings.host, settings.port, bounds)


def _api_key(args: argparse.Namespace) -> int:
    import asyncio

    from workerprobe.gateway.auth import KeyRing
    from workerprobe.gateway.store import open_store
    from workerprobe.settings import GatewaySettings

    settings = GatewaySettings()

    async def run() -> int:
        store = open_store(settings.database, settings.redis_url, settings.redis_prefix)
        await store.open()
        try:
            keys = KeyRing(store, None)
            if args.action == "create":
                key, doc = await keys.create(args.name, args.project)
                print(f"{doc['key_id']}\t{key}")
                print("Store this key now: only its digest is kept.", file=sys.stderr)
            elif args.action == "list":
                for doc in await keys.list():
                    state = "revoked" if doc["revoked_at"] else "active"
                    project = doc.get("project") or f"key:{doc['key_id']}"
                    print(f"{doc['key_id']}\t{doc['prefix']}...\t{state}\t{project}\t{doc['name']}")
            else:
                if not await keys.revoke(args.key_id):
                    print(f"no active key {args.key_id!r}", file=sys.stderr)
                    return 1
                print(f"revoked {args.key_id}")
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def _suite() -> ModuleType:
    """The suite's commands (imported when one is run: the gateway's never load the suite)."""
    from workerprobe.suite import commands

    return commands


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("workerprobe")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workerprobe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"workerprobe {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "load", help="a Locust load profile against a deployed Worker (or the embedded default); see load --help"
    )
    emulator = commands.add_parser("emulator", help="run the Workers AI REST API emulator")
    emulator.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, help="port (default 8788)")
    emulator.add_argument("--free-plan", action="store_true", help="daily neuron allocation and per-minute limits on")
    emulator.add_argument("--daily-neurons", type=float, help="daily allocation per account (switches metering on)")
    emulator.add_argument("--latency", choices=["zero", "realistic"], help="latency preset")
    emulator.add_argument("--ttft-ms", type=float, help="time to first token, ms")
    emulator.add_argument("--tpot-ms", type=float, help="time per output token, ms")
    emulator.add_argument("--test-mode", action="store_true", help="open /__emulator/clock and /__emulator/reset")
    emulator.set_defaults(func=_emulator)
    gateway = commands.add_parser("gateway", help="run the OpenAI-compatible reference gateway")
    gateway.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port (default 8787)")
    gateway.add_argument(
        "--emulator-port", type=int, default=8788, help="port of the embedded emulator, when no upstream is set"
    )
    gateway.add_argument(
        "--workers",
        type=_workers,
        help="server processes on the port (default 1); more than one needs WORKERPROBE_GATEWAY_REDIS_URL",
    )
    gateway.set_defaults(func=_gateway)
    keys = commands.add_parser("api-key", help="create, list or revoke the gateway's client keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser(
        "create",
        help="make a key (shown once; only its digest is stored)",
        description="A key sees only its project's assistants, threads, messages and runs. Keys made "
        "with the same --project share them; without --project a key is a project of its own.",
    )
    create.add_argument("--name", default="", help="a label for the key")
    create.add_argument("--project", help="the project the key belongs to (default: a project of its own)")
    key_actions.add_parser("list", help="the keys: id, prefix, state, project, name")
    revoke = key_actions.add_parser("revoke", help="revoke a key: it is refused from then on")
    revoke.add_argument("key_id", help="the key's id, as `workerprobe api-key list` shows it")
    keys.set_defaults(func=_api_key)
    test = commands.add_parser(
        "test",
        help="the contract and SDK suite against a deployed Worker (or the embedded default)",
        description="Exit 0 when every MUST holds, 1 when a MUST fails, 2 when the run could not verify. "
        "Options after -- go to pytest.",
        epilog="""examples:
  workerprobe test                                     the target of .env, else the embedded default
  workerprobe test https://my-worker.example.workers.dev/v1 --key sk-...
  workerprobe test --max-neurons 100 --depth quick     a cheaper run
  workerprobe test -- -k chat -x                       options after -- go to pytest
reports: reports/<run id>/ (reports/latest: the newest): summary.md, findings.md (a curl per finding),
conformance.md, junit.xml; `workerprobe report` builds the Allure HTML""",
        formatter_class=Help,
    )
    test.add_argument("url", nargs="?", help="base URL ending in /v1 (default: CLOUDFLARE_WORKER_URL, else embedded)")
    test.add_argument("--key", help="API key (default: API_KEY)")
    test.add_argument("--max-neurons", type=float, default=300.0, help="neurons the run may spend, all processes")
    test.add_argument("--depth", choices=sorted(DEPTHS), default="default", help="generated cases per operation")
    test.add_argument(
        "--report",
        default="reports",
        help="the reports' folder: this run writes to <folder>/<run id>/ (with its Allure results and junit.xml), "
        "and <folder>/latest points at it",
    )
    test.add_argument("--processes", default="auto", help="test processes (pytest-xdist -n)")
    test.add_argument(
        "--project-tests", action="store_true", help="with the embedded default, also this repository's own tests"
    )
    test.add_argument(
        "--deadline",
        type=_positive,
        default=1800.0,
        help="seconds the whole run may take: past it no request is made, the run ends with its partial reports",
    )
    test.add_argument(
        "--request-deadline",
        type=_positive,
        default=60.0,
        help="seconds one exchange may take, from the request to the answer's last byte",
    )
    test.add_argument(
        "--max-answer-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="the largest answer read (default 64 MB); an event stream, at most 4 MB (WORKERPROBE_MAX_STREAM_BYTES)",
    )
    test.set_defaults(func=lambda args: _suite().test(args))
    report = commands.add_parser(
        "report",
        help="build the Allure HTML of the last run and serve the reports on 127.0.0.1",
        formatter_class=Help,
    )
    report.add_argument(
        "--dir", default="reports", help="the reports' folder (its newest runs are shown), or one run's folder"
    )
    report.add_argument("--port", type=int, default=8089, help="port on 127.0.0.1 (0: any free one)")
    report.add_argument("--no-build", action="store_true", help="serve what is there; do not run Allure")
    report.add_argument("--no-serve", action="store_true", help="build, then print the files' paths")
    report.set_defaults(func=lambda args: _suite().report(args))
    clean = commands.add_parser(
        "clean", help="delete what earlier suite runs left on a target (their ledgers, tagged assistants)"
    )
    clean.add_argument("url", nargs="?", help="base URL ending in /v1 (default: CLOUDFLARE_WORKER_URL)")
    clean.add_argument("--key", help="API key (default: API_KEY)")
    clean.set_defaults(func=lambda args: _suite().clean(args))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["load"]:  # its own parser (loadkit/run.py), flags and help
        from workerprobe.loadkit.run import main as load

        return load(given[1:])
    extra: list[str] = []
    if "--" in given:  # `workerprobe test URL -- -x -k chat`: the rest goes to pytest
        extra, given = given[given.index("--") + 1 :], given[: given.index("--")]
    args = _parser().parse_args(given)
    args.pytest_args = extra
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
