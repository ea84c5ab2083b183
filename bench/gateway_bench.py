"""Gateway overhead, side by side in one run: (a) straight to the emulator's OpenAI endpoint,
(b) through the workerprobe gateway, (c) through the thinnest pass-through (thin_passthrough.py),
(d) through LiteLLM's proxy (its own venv, .cache/foreign/litellm) with its `cloudflare/`
provider pointed at the emulator's /ai/v1 (LiteLLM 1.108 calls Workers AI's OpenAI endpoint, as
the pass-through does), and with `--servers` (e) the gateway under granian and hypercorn beside
uvicorn, the same app.

Every server is one process on core 0; the load generator runs on core 1. Non-streamed chat
completions at concurrency 1, 16 and 64, and the time to the first token of a stream at
concurrency 1. Targets: at c=1 at most 0.5 ms added at the median; at c=16 at least the
pass-through's throughput (ratio >= 1.0); at most 1 ms added to the time to first token.

`--workers 1,2` measures `workerprobe gateway --workers N` instead (its shared state in a Redis
server of its own): the gateway may use both cores, beside the emulator and the load generator.

    .venv/bin/python bench/gateway_bench.py [--seconds 5] [--rounds 3] [--servers] [--no-litellm]
    .venv/bin/python bench/gateway_bench.py --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import orjson

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.loadgen import Result, median_ttft, pin_self, throughput
from workerprobe.procs import free_port, gateway_env, gateway_over_emulator, redis_server, serve, stop, wait_listening

BENCH = Path(__file__).resolve().parent
OUT = BENCH.parent / "reports" / "bench"

MODEL = load_catalogue().default("text-generation").name
BODY = orjson.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Tell me about harbours"}], "temperature": 0}
)
STREAM = orjson.dumps(
    {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me about harbours"}],
        "temperature": 0,
        "stream": True,
        "max_tokens": 20,
    }
)
HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
LITELLM_KEY = "sk-bench-litellm"


def _popen(command: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.Popen:
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening("127.0.0.1", port, timeout=timeout, process=process)
    except BaseException:
        stop(process)
        raise
    return process


@contextmanager
def _server(name: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """The gateway under another HTTP server (bench/serve_gateway.py), on core 0."""
    port = free_port()
    process = _popen([sys.executable, str(BENCH / "serve_gateway.py"), name, str(port)], port, env)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def _litellm(emulator_url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """LiteLLM's proxy with its cloudflare/ provider, from its own venv (made once by bench-foreign's code)."""
    from foreign_targets import CACHE, venv

    home = venv("litellm")
    account = f"{emulator_url}/client/v4/accounts/bench/ai"
    models = [
        {
            "model_name": MODEL,
            "litellm_params": {"model": f"cloudflare/{MODEL}", "api_base": f"{account}/v1", "api_key": "bench"},
        }
    ]
    config = CACHE / "litellm-bench.yaml"
    config.write_text(json.dumps({"model_list": models, "general_settings": {"master_key": LITELLM_KEY}}))
    port = free_port()
    offline = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    command = [str(home / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    process = _popen(command, port, offline, timeout=180)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def _tree_cpu(pid: int) -> list[int]:
    """A process and its descendants (granian serves from a child process)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            todo.extend(int(child) for child in children)
    return pids


def _thin(upstream_base: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            str(Path(__file__).parent / "thin_passthrough.py"),
            str(port),
            upstream_base,
        ]
    )
    wait_listening("127.0.0.1", port)
    return proc, f"http://127.0.0.1:{port}"


def _body(model: str, stream: bool) -> bytes:
    message = {"model": model, "messages": [{"role": "user", "content": "Tell me about harbours"}], "temperature": 0}
    return orjson.dumps({**message, "stream": True, "max_tokens": 20} if stream else message)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", action="store_true", help="the gateway under granian and hypercorn too")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's proxy out")
    parser.add_argument("--workers", help="instead: `workerprobe gateway --workers N` for each N listed, e.g. 1,2")
    parser.add_argument(
        "--baseline",
        help="another source tree's src/ (e.g. a `git worktree` of an earlier commit): its gateway is measured "
        "beside this one in the same rounds, and the ratios printed",
    )
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.workers:
        return workers_scaling(args, [int(n) for n in args.workers.split(",")])
    pin_self(1)
    print(f"cores: {os.cpu_count()}; emulator, proxies and servers on core 0, load generator on core 1")
    litellm_headers = {**HEADERS, "Authorization": f"Bearer {LITELLM_KEY}"}
    with ExitStack() as stack:
        gateway, emulator = stack.enter_context(
            gateway_over_emulator(api_key="bench", token="bench", account="bench", cpu=0)
        )
        base = f"{emulator.url}/client/v4/accounts/bench/ai"
        thin, thin_url = _thin(base)
        stack.callback(stop, thin)
        # name: (url, model, headers, pid of the proxy or 0)
        targets: dict[str, tuple[str, str, dict[str, str], int]] = {
            "direct": (f"{base}/v1/chat/completions", MODEL, HEADERS, 0),
            "thin": (f"{thin_url}/v1/chat/completions", MODEL, HEADERS, thin.pid),
            "gateway": (f"{gateway.url}/v1/chat/completions", MODEL, HEADERS, gateway.process.pid),
        }
        env = gateway_env(emulator.url, api_key="bench", token="bench", account="bench")
        if args.servers:
            for server in ("granian", "hypercorn"):
                process, url = stack.enter_context(_server(server, env))
                targets[f"gw-{server}"] = (f"{url}/v1/chat/completions", MODEL, HEADERS, process.pid)
        if args.baseline:
            baseline = stack.enter_context(
                serve(["gateway"], env={**env, "PYTHONPATH": str(Path(args.baseline).resolve())}, cpu=0)
            )
            targets["baseline"] = (f"{baseline.url}/v1/chat/completions", MODEL, HEADERS, baseline.process.pid)
        if not args.no_litellm:
            process, url = stack.enter_context(_litellm(emulator.url))
            targets["litellm"] = (f"{url}/v1/chat/completions", MODEL, litellm_headers, process.pid)
        # Rounds interleave the paths, so a slow spell of the machine hits all of them;
        # each cell reports the median round.
        rounds: dict[tuple[str, int], list[Result]] = {}
        for _ in range(args.rounds):
            for concurrency in (1, 16, 64):
                for name, (url, model, headers, pid) in targets.items():
                    # The emulator's CPU is watched too: every request costs it one call, so it is
                    # a yardstick that runs at the machine's speed of the moment.
                    watch = (*(_tree_cpu(pid) if pid else ()), emulator.process.pid)
                    seconds = args.seconds if not name.startswith("litellm") else min(args.seconds, 3.0)
                    cell = throughput(url, _body(model, False), headers, seconds, concurrency, warmup=1.0, watch=watch)
                    rounds.setdefault((name, concurrency), []).append(cell)
        ttft = {
            name: median_ttft(url, _body(model, True), headers, n=60 if name.startswith("litellm") else 300)
            for name, (url, model, headers, _pid) in targets.items()
        }
    results = {k: sorted(v, key=lambda r: r.rps)[len(v) // 2] for k, v in rounds.items()}
    return report(args, list(targets), rounds, results, ttft, emulator.process.pid)


def report(
    args: argparse.Namespace,
    names: list[str],
    rounds: dict[tuple[str, int], list[Result]],
    results: dict[tuple[str, int], Result],
    ttft: dict[str, float],
    emulator_pid: int,
) -> int:
    print(
        f"\nnon-streamed chat completions, median of {args.rounds} rounds of {args.seconds:.0f} s"
        " (req/s [lowest-highest round], median latency, errors); ratio: req/s against the thin pass-through"
    )
    print(f"{'path':<12}" + "".join(f"{'c=' + str(c):>40}" for c in (1, 16, 64)))
    for name in names:
        cells = ""
        for c in (1, 16, 64):
            r, rs = results[(name, c)], rounds[(name, c)]
            spread = f"[{min(x.rps for x in rs):.0f}-{max(x.rps for x in rs):.0f}]"
            ratio = r.rps / results[("thin", c)].rps
            cells += f"{r.rps:>7.0f} {spread:>12} {r.p50_ms:>6.2f} ms {r.errors:>2} x{ratio:<5.2f}"
        print(f"{name:<12}{cells}")

    def own(result: Result) -> float:
        return sum(v for pid, v in (result.cpu_us or {}).items() if pid != emulator_pid)

    def cpu(name: str, yardstick: bool = False) -> float | None:
        cells = [
            own(r) / r.cpu_us[emulator_pid] if yardstick else own(r)
            for (n, _), rs in rounds.items()
            if n == name
            for r in rs
            if r.cpu_us and r.cpu_us.get(emulator_pid)
        ]
        return sorted(cells)[len(cells) // 2] if cells else None

    cpus = {name: cpu(name) for name in names if name != "direct"}
    relative = {name: cpu(name, yardstick=True) for name in names if name != "direct"}
    print(
        "\nCPU per request of the proxy process (and its children), median over all cells: "
        + ", ".join(f"{name} {value:.0f} us" for name, value in cpus.items() if value is not None)
    )
    print(
        "the same, in units of the emulator's CPU per request in the same cell (steadier than µs when the "
        "machine's speed varies): " + ", ".join(f"{n} {v:.2f}" for n, v in relative.items() if v is not None)
    )
    added_c1 = results[("gateway", 1)].p50_ms - results[("direct", 1)].p50_ms
    thin_c1 = results[("thin", 1)].p50_ms - results[("direct", 1)].p50_ms
    ratio16 = results[("gateway", 16)].rps / results[("thin", 16)].rps
    ratio64 = results[("gateway", 64)].rps / results[("thin", 64)].rps
    added_ttft = ttft["gateway"] - ttft["direct"]
    print("\nstreams, c=1, median time to first token: " + ", ".join(f"{n} {v:.2f} ms" for n, v in ttft.items()))
    print(
        f"\nadded median at c=1: gateway {added_c1:.2f} ms (thin {thin_c1:.2f} ms)   target <= 0.5 ms: "
        f"{'met' if added_c1 <= 0.5 else 'MISSED'}"
    )
    print(
        f"throughput gateway / thin: c=16 {ratio16:.2f}, c=64 {ratio64:.2f}   target >= 1.0 at c=16: "
        f"{'met' if ratio16 >= 1.0 else 'MISSED'}"
    )
    print(
        f"added time to first token at c=1: {added_ttft:.2f} ms   target <= 1 ms: "
        f"{'met' if added_ttft <= 1 else 'MISSED'}"
    )
    for name in [n for n in names if n.startswith("litellm")]:
        print(
            f"{name}: throughput against the gateway c=1 {results[(name, 1)].rps / results[('gateway', 1)].rps:.3f},"
            f" c=16 {results[(name, 16)].rps / results[('gateway', 16)].rps:.3f};"
            f" added median at c=1 {results[(name, 1)].p50_ms - results[('direct', 1)].p50_ms:.2f} ms"
        )
    if args.baseline:
        print(
            f"\nbeside the baseline ({args.baseline}): throughput gateway / baseline "
            + ", ".join(f"c={c} {results[('gateway', c)].rps / results[('baseline', c)].rps:.2f}" for c in (1, 16, 64))
        )
    OUT.mkdir(parents=True, exist_ok=True)
    figures = {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "cells": {
            f"{name} c={c}": {
                "rps_median": results[(name, c)].rps,
                "rps_rounds": [r.rps for r in rounds[(name, c)]],
                "p50_ms": results[(name, c)].p50_ms,
                "errors": results[(name, c)].errors,
                "ratio_to_thin": results[(name, c)].rps / results[("thin", c)].rps,
            }
            for name in names
            for c in (1, 16, 64)
        },
        "cpu_us_per_request": cpus,
        "cpu_per_request_in_emulator_units": relative,
        "ttft_ms_c1": ttft,
        "targets": {"added_p50_c1_ms": added_c1, "ratio_c16": ratio16, "added_ttft_c1_ms": added_ttft},
    }
    (OUT / "gateway.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures in {OUT / 'gateway.json'}")
    return 0


def workers_scaling(args: argparse.Namespace, counts: list[int]) -> int:
    """`workerprobe gateway --workers N` (shared state in Redis), unpinned, the load generator on core 1."""
    pin_self(1)
    body = _body(MODEL, False)
    cells: dict[tuple[int, int], list[float]] = {}
    with redis_server() as redis, serve(["emulator"], env={"CF_API_TOKEN": "bench"}) as emulator:
        env = gateway_env(
            emulator.url,
            api_key="bench",
            token="bench",
            account="bench",
            redis_url=f"redis://127.0.0.1:{redis.port}/0",
        )
        gateways = {n: ExitStack() for n in counts}
        urls = {}
        for n, stack in gateways.items():
            served = stack.enter_context(serve(["gateway", "--workers", str(n)], env=env))
            urls[n] = f"{served.url}/v1/chat/completions"
        try:
            for _ in range(args.rounds):
                for concurrency in (16, 64):
                    for n, url in urls.items():
                        result = throughput(url, body, HEADERS, args.seconds, concurrency, warmup=1.0)
                        if result.errors:
                            print(f"workers {n}, c={concurrency}: {result.errors} errors")
                        cells.setdefault((n, concurrency), []).append(result.rps)
        finally:
            for stack in gateways.values():
                stack.close()

    def mid(n: int, c: int) -> float:
        return sorted(cells[(n, c)])[len(cells[(n, c)]) // 2]

    print(f"\n`workerprobe gateway --workers N`, Redis store, median of {args.rounds} rounds of {args.seconds:.0f} s:")
    for n in counts:
        line = "".join(
            f"   c={c}: {mid(n, c):>6.0f} req/s [{min(cells[(n, c)]):.0f}-{max(cells[(n, c)]):.0f}]" for c in (16, 64)
        )
        print(f"workers {n}{line}")
    first = counts[0]
    for n in counts[1:]:
        print(
            f"workers {n} / workers {first}: " + ", ".join(f"c={c} {mid(n, c) / mid(first, c):.2f}" for c in (16, 64))
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gateway-workers.json").write_text(
        json.dumps({f"workers={n} c={c}": v for (n, c), v in cells.items()}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
