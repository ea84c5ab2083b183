"""`workerprobe` command line: run the Workers AI emulator or the reference gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _serve(app: object, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )


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
    print(f"workerprobe emulator on http://{settings.host}:{settings.port}/client/v4", file=sys.stderr, flush=True)
    _serve(create_app(settings), settings.host, settings.port)
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from workerprobe.gateway import create_app
    from workerprobe.settings import GatewaySettings

    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    settings = GatewaySettings(**overrides)
    if not settings.api_key:
        print("workerprobe gateway: set API_KEY (the key clients must send)", file=sys.stderr)
        return 2
    print(
        f"workerprobe gateway on http://{settings.host}:{settings.port}/v1 -> {settings.cf_api_base_url}",
        file=sys.stderr,
        flush=True,
    )
    _serve(create_app(settings), settings.host, settings.port)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workerprobe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
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
    gateway.set_defaults(func=_gateway)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
