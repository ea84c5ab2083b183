"""Gateway overhead, side by side in one run: (a) straight to the emulator's OpenAI endpoint,
(b) through the workerprobe gateway, (c) through the thinnest pass-through (thin_passthrough.py).

Every server is one uvicorn worker (uvloop, httptools) on core 0; the load generator runs on core
1. Non-streamed chat completions at concurrency 1, 16 and 64, and the time to the first token of
a stream at concurrency 1. Targets: at c=1 at most 0.5 ms added at the median; at c=16 at least
80% of the pass-through's throughput; at most 1 ms added to the time to first token.

    .venv/bin/python bench/gateway_bench.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import orjson

from workerprobe.loadkit.loadgen import Result, median_ttft, pin_self, throughput
from workerprobe.procs import free_port, gateway_env, gateway_over_emulator, serve, wait_listening

MODEL = "@cf/meta/llama-3.1-8b-instruct-fast"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline",
        help="another source tree's src/ (e.g. a `git worktree` of an earlier commit): its gateway is measured "
        "beside this one in the same rounds, and the ratios printed",
    )
    args = parser.parse_args()
    pin_self(1)
    print(f"cores: {os.cpu_count()}; emulator, gateway and pass-through on core 0, load generator on core 1")
    with ExitStack() as stack:
        gateway, emulator = stack.enter_context(
            gateway_over_emulator(api_key="bench", token="bench", account="bench", cpu=0)
        )
        base = f"{emulator.url}/client/v4/accounts/bench/ai"
        thin, thin_url = _thin(base)
        try:
            targets = {
                "direct": f"{base}/v1/chat/completions",
                "gateway": f"{gateway.url}/v1/chat/completions",
                "thin": f"{thin_url}/v1/chat/completions",
            }
            pids = {"direct": 0, "gateway": gateway.process.pid, "thin": thin.pid}
            if args.baseline:
                env = gateway_env(emulator.url, api_key="bench", token="bench", account="bench")
                env["PYTHONPATH"] = str(Path(args.baseline).resolve())
                baseline = stack.enter_context(serve(["gateway"], env=env, cpu=0))
                targets["baseline"] = f"{baseline.url}/v1/chat/completions"
                pids["baseline"] = baseline.process.pid
            # Rounds interleave the paths, so a slow spell of the machine hits all of them;
            # each cell reports the median round.
            rounds: dict[tuple[str, int], list[Result]] = {}
            for _ in range(args.rounds):
                for concurrency in (1, 16, 64):
                    for name, url in targets.items():
                        watch = (pids[name],) if pids[name] else ()
                        cell = throughput(url, BODY, HEADERS, args.seconds, concurrency, warmup=1.0, watch=watch)
                        rounds.setdefault((name, concurrency), []).append(cell)
            results = {k: sorted(v, key=lambda r: r.rps)[len(v) // 2] for k, v in rounds.items()}
            ttft = {name: median_ttft(url, STREAM, HEADERS) for name, url in targets.items()}
        finally:
            thin.terminate()
            thin.wait()

    print(
        f"\nnon-streamed chat completions, median of {args.rounds} rounds of {args.seconds:.0f} s"
        " (req/s, median latency, errors):"
    )
    print(f"{'path':<10}" + "".join(f"{'c=' + str(c):>26}" for c in (1, 16, 64)))
    for name in ("direct", "thin", "gateway", *(("baseline",) if args.baseline else ())):
        cells = "".join(
            f"{r.rps:>10.0f} /s {r.p50_ms:>7.2f} ms {r.errors:>3}" for r in (results[(name, c)] for c in (1, 16, 64))
        )
        print(f"{name:<10}{cells}")

    def cpu(name: str) -> float:
        cells = [r.cpu_us[pids[name]] for (n, _), rs in rounds.items() if n == name for r in rs if r.cpu_us]
        return sorted(cells)[len(cells) // 2]

    print(
        f"\nCPU per request of the proxy process, median over all cells: thin {cpu('thin'):.0f} us,"
        f" gateway {cpu('gateway'):.0f} us (ratio {cpu('thin') / cpu('gateway'):.2f})"
    )
    added_c1 = results[("gateway", 1)].p50_ms - results[("direct", 1)].p50_ms
    thin_c1 = results[("thin", 1)].p50_ms - results[("direct", 1)].p50_ms
    ratio16 = results[("gateway", 16)].rps / results[("thin", 16)].rps
    ratio64 = results[("gateway", 64)].rps / results[("thin", 64)].rps
    added_ttft = ttft["gateway"] - ttft["direct"]
    print(
        f"\nstreams, c=1, median time to first token: direct {ttft['direct']:.2f} ms, thin {ttft['thin']:.2f} ms,"
        f" gateway {ttft['gateway']:.2f} ms"
    )
    print(
        f"\nadded median at c=1: gateway {added_c1:.2f} ms (thin {thin_c1:.2f} ms)   target <= 0.5 ms: "
        f"{'met' if added_c1 <= 0.5 else 'MISSED'}"
    )
    print(
        f"throughput gateway / thin: c=16 {ratio16:.2f}, c=64 {ratio64:.2f}   target >= 0.80 at c=16: "
        f"{'met' if ratio16 >= 0.8 else 'MISSED'}"
    )
    print(
        f"added time to first token at c=1: {added_ttft:.2f} ms   target <= 1 ms: "
        f"{'met' if added_ttft <= 1 else 'MISSED'}"
    )
    if args.baseline:
        print(
            f"\nbeside the baseline ({args.baseline}): throughput gateway / baseline "
            + ", ".join(f"c={c} {results[('gateway', c)].rps / results[('baseline', c)].rps:.2f}" for c in (1, 16, 64))
            + f"; added median at c=1 {added_c1:.2f} ms against "
            f"{results[('baseline', 1)].p50_ms - results[('direct', 1)].p50_ms:.2f} ms;"
            f" time to first token {ttft['gateway']:.2f} ms against {ttft['baseline']:.2f} ms;"
            f" CPU per request {cpu('gateway'):.0f} us against {cpu('baseline'):.0f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
