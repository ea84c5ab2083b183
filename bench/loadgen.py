"""`make bench-loadgen`: workerprobe's load profile beside GuideLLM and AIPerf, the tools its users
would pick instead, against the same emulator and judged by the emulator's own clock.

For each concurrency level and each tool: a fresh emulator (TTFT 200 ms, 20 ms a token, every
streamed call traced by the server's clock: `trace_all`; OpenAI text parts accepted, which
GuideLLM always sends: `text_parts`) on core 0, the tool on core 1 (taskset), streaming chat
completions with `max_tokens` 64 for `--seconds`. Then:

- each tool's own medians of TTFT, TPOT (the mean gap after the first token, per request) and ITL
  (every gap between chunks; GuideLLM reports none) against the same medians of the server's
  trace: the error, absolute, in ms;
- its request error rate, by its own count;
- its CPU seconds (user + system of the tool and every process it waited for, from wait4) per
  1,000 tokens the server streamed while it ran.

The highest level at which a tool's TTFT error stays under 5% of the server's median TTFT and its
error rate under 5% is its capacity on one core. GuideLLM and AIPerf are installed from PyPI in
venvs of their own under .cache/bench-loadgen/ (GuideLLM pulls in PyTorch: several GB); both need
a tokenizer, and with no model hub here a word-level one is built locally (prompt token counts are
the tools' own, by that tokenizer). Figures: reports/bench/loadgen.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from workerprobe.catalogue import load as load_catalogue
from workerprobe.procs import free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench-loadgen"
OUT = ROOT / "reports" / "bench"
MODEL = load_catalogue().default("text-generation").name
TOKEN = "bench-loadgen-token"
ACCOUNT = "bench"
PINS = {"guidellm": "guidellm==0.8.1", "aiperf": "aiperf==0.13.0"}
TOOLS = ("workerprobe", "guidellm", "aiperf")
PROMPT_TOKENS, OUTPUT_TOKENS = 32, 64


def say(message: str) -> None:
    print(f"bench-loadgen: {message}", flush=True)


# --- the tools -----------------------------------------------------------------------------------


def venv(tool: str) -> Path:
    """The tool's own venv (made once): its bin folder."""
    home = CACHE / tool
    stamp = home / ".installed"
    if not stamp.exists() or stamp.read_text() != PINS[tool]:
        say(f"installing {PINS[tool]} from PyPI into {home} (once)")
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run(
            [str(home / "bin" / "pip"), "install", "--quiet", PINS[tool]],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        stamp.write_text(PINS[tool])
    return home / "bin"


def tokenizer(python: Path) -> Path:
    """A word-level tokenizer in the Hugging Face layout (no hub here), built with the tools' own
    `tokenizers` and checked to load with AutoTokenizer."""
    folder = CACHE / "tokenizer"
    if (folder / "tokenizer.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    script = f"""
import json
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
words = ["[UNK]"] + [f"w{{i}}" for i in range(2000)] + "the a of to and in is it you that was for on are".split()
vocab = {{w: i for i, w in enumerate(dict.fromkeys(words))}}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.decoder = decoders.WordPiece()
tok.save({str(folder / "tokenizer.json")!r})
json.dump({{"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 1000000}},
          open({str(folder / "tokenizer_config.json")!r}, "w"))
from transformers import AutoTokenizer
assert AutoTokenizer.from_pretrained({str(folder)!r}).encode("the a of") == [2001, 2002, 2003]
"""
    subprocess.run([str(python), "-c", script], check=True, capture_output=True)
    return folder


# --- the emulator and its clock ------------------------------------------------------------------


@contextmanager
def emulator(core: int) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "CF_API_TOKEN": TOKEN,
        "WORKERPROBE_EMULATOR_TRACE_ALL": "true",
        "WORKERPROBE_EMULATOR_TEXT_PARTS": "true",
    }
    command = [
        "taskset", "-c", str(core), sys.executable, "-m", "workerprobe", "emulator",
        "--port", str(port), "--ttft-ms", "200", "--tpot-ms", "20",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, timeout=30, process=process)  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


def ground_truth(url: str) -> dict[str, Any]:
    """The server's medians over every streamed call of the run, in seconds."""
    with urllib.request.urlopen(f"{url}/__emulator/trace", timeout=60) as response:
        traces = json.loads(response.read())
    calls = [t for t in traces.values() if t.get("tokens")]
    ttft = [t["tokens"][0] - t["arrived"] for t in calls]
    gaps = [b - a for t in calls for a, b in zip(t["tokens"], t["tokens"][1:], strict=False)]
    tpot = [(t["tokens"][-1] - t["tokens"][0]) / (len(t["tokens"]) - 1) for t in calls if len(t["tokens"]) > 1]
    return {
        "calls": len(calls),
        "tokens": sum(len(t["tokens"]) for t in calls),
        "ttft": statistics.median(ttft) if ttft else None,
        "tpot": statistics.median(tpot) if tpot else None,
        "itl": statistics.median(gaps) if gaps else None,
    }


@contextmanager
def busy_cores(cores: tuple[int, ...]) -> Iterator[None]:
    """One process spinning on each core, at the tools' own priority, for as long as the block runs."""
    spinners = [
        subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", "while True: pass"]) for core in cores
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


# --- one run of one tool -------------------------------------------------------------------------


def command(tool: str, base: str, concurrency: int, seconds: float, out: Path, bins: dict[str, Path]) -> list[str]:
    ai = f"{base}/client/v4/accounts/{ACCOUNT}/ai"
    if tool == "workerprobe":
        return [
            sys.executable, "-m", "workerprobe", "load", f"{ai}/v1", "--key", TOKEN, "--profile", "steady",
            "--classes", "StreamUser", "--users", str(concurrency), "--seconds", str(seconds),
            "--max-tokens", str(OUTPUT_TOKENS), "--prompts", "long-answer", "--max-neurons", "1e12",
            "--max-error-rate", "1", "--allow-busy-generator", "--out", str(out),
        ]  # fmt: skip
    tok = str(CACHE / "tokenizer")
    if tool == "guidellm":
        return [
            str(bins["guidellm"] / "guidellm"), "run",
            "--backend", f"kind=openai_http,target={ai},model='{MODEL}',api_key={TOKEN},validate_backend=false",
            "--profile", f"kind=concurrent,streams={concurrency}",
            "--constraint", f"kind=max_duration,seconds={seconds}",
            "--data", f"kind=synthetic_text,prompt_tokens={PROMPT_TOKENS},output_tokens={OUTPUT_TOKENS}",
            "--tokenizer", f"kind=huggingface_auto,model={tok}",
            "--output", f"kind=json,path={out / 'guidellm.json'}", "--disable-console",
        ]  # fmt: skip
    return [
        str(bins["aiperf"] / "aiperf"), "profile", "--model", MODEL, "--url", ai, "--endpoint-type", "chat",
        "--streaming", "--api-key", TOKEN, "--tokenizer", tok, "--concurrency", str(concurrency),
        "--benchmark-duration", str(seconds), "--synthetic-input-tokens-mean", str(PROMPT_TOKENS),
        "--output-tokens-mean", str(OUTPUT_TOKENS), "--artifact-dir", str(out / "aiperf"), "--ui-type", "none",
    ]  # fmt: skip


def measured(tool: str, out: Path) -> dict[str, Any]:
    """The tool's own medians (seconds) and error rate, from its own report."""
    if tool == "workerprobe":
        s = json.loads((out / "summary.json").read_text())
        return {
            "ttft": s["ttft_s"].get("p50"),
            "tpot": s["tpot_s"].get("p50"),
            "itl": s["itl_s"].get("p50"),
            "requests": s["requests"],
            "error_rate": s["error_rate"],
        }
    if tool == "guidellm":
        m = json.loads((out / "guidellm.json").read_text())["benchmarks"][0]["metrics"]
        totals = m["request_totals"]
        done = totals["successful"] + totals["errored"]

        def median(name: str) -> float | None:
            value = m[name]["successful"].get("median")
            return value / 1000 if value else None

        return {
            "ttft": median("time_to_first_token_ms"),
            "tpot": median("inter_token_latency_ms"),  # GuideLLM's ITL: the per-request mean gap
            "itl": None,  # no gap between chunks in its report
            "requests": done,
            "error_rate": totals["errored"] / done if done else 1.0,
        }
    r = json.loads((out / "aiperf" / "profile_export_aiperf.json").read_text())
    count = r["request_count"]["avg"]
    errors = sum(e.get("count", 0) for e in r.get("error_summary") or [])

    def p50(name: str) -> float | None:
        block = r.get(name)
        return block["p50"] / 1000 if block and block.get("p50") is not None else None

    return {
        "ttft": p50("time_to_first_token"),
        "tpot": p50("inter_token_latency"),  # AIPerf's ITL: (latency - TTFT) / (tokens - 1)
        "itl": p50("inter_chunk_latency"),
        "requests": count + errors,
        "error_rate": errors / (count + errors) if count + errors else 1.0,
    }


def run_one(tool: str, concurrency: int, seconds: float, bins: dict[str, Path], core: int) -> dict[str, Any]:
    out = OUT / "loadgen" / f"{tool}-{concurrency}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with emulator(core=0) as base:
        cmd = ["taskset", "-c", str(core), *command(tool, base, concurrency, seconds, out, bins)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        env.pop("HF_HUB_OFFLINE", None)  # AIPerf's offline path looks the local tokenizer up in the hub cache
        with (out / "tool.log").open("w") as log:
            started = time.monotonic()
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out)
            _, status, usage = os.wait4(process.pid, 0)  # its CPU, and that of all it waited for
            wall = time.monotonic() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        truth = ground_truth(base)
    cpu = usage.ru_utime + usage.ru_stime
    try:
        seen = measured(tool, out)
    except (OSError, KeyError, IndexError, ValueError) as failure:
        raise RuntimeError(f"{tool} at {concurrency}: no report ({failure}); see {out / 'tool.log'}") from failure
    errors = {
        name: abs(seen[name] - truth[name]) if seen[name] is not None and truth[name] is not None else None
        for name in ("ttft", "tpot", "itl")
    }
    return {
        "tool": tool,
        "concurrency": concurrency,
        "exit_code": process.returncode,
        "wall_s": round(wall, 1),
        "measured": seen,
        "server": truth,
        "error_s": errors,
        "ttft_error_share": errors["ttft"] / truth["ttft"] if errors["ttft"] is not None and truth["ttft"] else None,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1k_tokens": round(1000 * cpu / truth["tokens"], 3) if truth["tokens"] else None,
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--levels", default="32,128,256,512", help="concurrent streams (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each run (default %(default)s)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="default %(default)s")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole set (run-to-run spread)")
    parser.add_argument(
        "--busy",
        action="store_true",
        help="keep both cores busy while the tools run (one spinning process pinned to each core): the error "
        "of a measurement on a loaded machine",
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    tools = [tool for tool in args.tools.split(",") if tool]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools {sorted(unknown)}; choose from {', '.join(TOOLS)}")
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        say("NOT RUN: needs taskset and two cores (the emulator on one, the load generator on the other)")
        return 2
    bins = {tool: venv(tool) for tool in tools if tool != "workerprobe"}
    if bins:
        tokenizer(next(iter(bins.values())) / "python")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 512 streams and their sockets
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if args.busy:
            stack.enter_context(busy_cores((0, 1)))
        run_all(args, levels, tools, bins, results)
    _report(args, levels, tools, results)
    return 0


def run_all(
    args: argparse.Namespace, levels: list[int], tools: list[str], bins: dict[str, Path], results: list[dict[str, Any]]
) -> None:
    for round_ in range(args.rounds):
        for level in levels:
            for tool in tools:
                result = run_one(tool, level, args.seconds, bins, core=1) | {"round": round_ + 1}
                results.append(result)
                e = result["error_s"]
                say(
                    f"round {round_ + 1} c={level:<4} {tool:<12} requests {result['measured']['requests']:>6} "
                    f"errors {result['measured']['error_rate']:.1%}  TTFT {_ms(result['measured']['ttft'])} ms "
                    f"(server {_ms(result['server']['ttft'])}, error {_ms(e['ttft'])})  TPOT error {_ms(e['tpot'])}  "
                    f"ITL error {_ms(e['itl'])}  CPU {result['cpu_s_per_1k_tokens']} s/1k tokens"
                )


def _passes(result: dict[str, Any]) -> bool:
    share = result["ttft_error_share"]
    return share is not None and share < 0.05 and result["measured"]["error_rate"] < 0.05


def table(results: list[dict[str, Any]], levels: list[int], tools: list[str]) -> list[str]:
    """Per tool and level: the median over the rounds, and the spread (lowest to highest) after it."""

    def cell(values: list[float], scale: float, digits: int) -> str:
        if not values:
            return "n/a"
        mid = statistics.median(values) * scale
        if len(values) == 1:
            return f"{mid:.{digits}f}"
        return f"{mid:.{digits}f} ({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})"

    lines = [
        f"{'tool':<12}{'streams':>8}  {'TTFT error ms':<22}{'TPOT error ms':<20}{'ITL error ms':<20}"
        f"{'errors %':<18}{'CPU s / 1k tokens':<20}"
    ]
    for tool in tools:
        for level in levels:
            rs = [r for r in results if r["tool"] == tool and r["concurrency"] == level]
            if not rs:
                continue

            def errs(name: str, rs: list[dict[str, Any]] = rs) -> list[float]:
                return [r["error_s"][name] for r in rs if r["error_s"][name] is not None]

            lines.append(
                f"{tool:<12}{level:>8}  {cell(errs('ttft'), 1000, 1):<22}{cell(errs('tpot'), 1000, 2):<20}"
                f"{cell(errs('itl'), 1000, 2):<20}{cell([r['measured']['error_rate'] for r in rs], 100, 1):<18}"
                f"{cell([r['cpu_s_per_1k_tokens'] for r in rs if r['cpu_s_per_1k_tokens'] is not None], 1, 3):<20}"
            )
    return lines


def _report(args: argparse.Namespace, levels: list[int], tools: list[str], results: list[dict[str, Any]]) -> None:
    # A level counts when every round at it kept the TTFT error and the request errors under 5%.
    capacity = {}
    for tool in tools:
        good = [
            level
            for level in levels
            if (rs := [r for r in results if r["tool"] == tool and r["concurrency"] == level])
            and all(_passes(r) for r in rs)
        ]
        capacity[tool] = max(good) if good else None
    print("\n".join(table(results, levels, tools)), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"levels": levels, "seconds": args.seconds, "rounds": args.rounds, "busy": args.busy, "pins": PINS}
    report |= {"results": results, "capacity_one_core": capacity}
    name = "loadgen-busy.json" if args.busy else "loadgen.json"
    (OUT / name).write_text(json.dumps(report, indent=2) + "\n")
    say(f"highest concurrency with TTFT error and request errors under 5%, one core: {capacity}")
    say(f"figures in {OUT / name}")


if __name__ == "__main__":
    raise SystemExit(main())
