"""Public OpenAI-to-Workers-AI Workers, run offline as targets nobody here wrote.

Each Worker of bench/workers/workers.json is rebuilt from its public repository at the commit
named there (never committed here): its source is cloned (or taken from a local mirror:
`WORKERPROBE_WORKER_MIRRORS`, a folder of `owner+name/repo` git directories), its runtime
dependencies installed from npm, and its entry served unmodified by `wrangler dev` (from npm,
local mode: KV and R2 simulated by wrangler) behind bench/workers/harness.mjs, which gives it a
fake `AI` binding answered by the workerprobe emulator.

    .venv/bin/python bench/foreign_workers.py pa4080          # serve one, print its URL, until ^C
    .venv/bin/python bench/foreign_targets.py --targets worker:pa4080 worker:cng

Needs Node.js (wrangler 4.86 is the last to run on Node 20) and git.
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
from typing import Any

import httpx

from workerprobe.paths import cache_dir
from workerprobe.procs import free_port, serve, stop

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "bench" / "workers"
WRANGLER = "wrangler@4.86.0"  # the last wrangler 4 that runs on Node.js 20
HOME = cache_dir() / "workers"


def specs() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in json.loads((HERE / "workers.json").read_text()).items() if not k.startswith("_")}


def _run(command: list[str], cwd: Path, timeout: float = 600) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}: {(done.stderr or done.stdout)[-1500:]}")


def _tool() -> Path:
    """wrangler, installed once."""
    tool = HOME / "tool"
    wrangler = tool / "node_modules" / ".bin" / "wrangler"
    if not wrangler.exists():
        tool.mkdir(parents=True, exist_ok=True)
        (tool / "package.json").write_text('{"private": true}\n')
        _run(["npm", "install", "--no-audit", "--no-fund", WRANGLER], tool)
    return wrangler


def _source(spec: dict[str, Any], into: Path) -> None:
    """The Worker's tree at its commit: from a local mirror when there is one, else cloned."""
    mirrors = os.environ.get("WORKERPROBE_WORKER_MIRRORS", "/work/.mirror")
    mirror = Path(mirrors) / spec["repo"].replace("/", "+") / "repo"
    into.mkdir(parents=True)
    if mirror.is_dir():
        archive = subprocess.run(
            ["git", f"--git-dir={mirror}", "archive", spec["commit"]], capture_output=True, check=True, timeout=120
        )
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True, timeout=120)
        return
    _run(["git", "clone", "--quiet", f"https://github.com/{spec['repo']}", str(into)], into.parent)
    _run(["git", "checkout", "--quiet", spec["commit"]], into)


def build(name: str) -> Path:
    """The Worker's harness folder, built once per commit."""
    spec = specs()[name]
    home = HOME / name
    stamp = home / "built"
    if stamp.exists() and stamp.read_text() == spec["commit"]:
        return home
    shutil.rmtree(home, ignore_errors=True)
    _source(spec, home / "worker")
    package = home / "worker" / "package.json"
    if package.exists() and json.loads(package.read_text()).get("dependencies"):
        _run(["npm", "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], home / "worker")
    harness = (HERE / "harness.mjs").read_text().replace("WORKER_ENTRY", f"./worker/{spec['entry']}")
    (home / "harness.mjs").write_text(harness)
    stamp.write_text(spec["commit"])
    return home


def _config(name: str, spec: dict[str, Any], emulator: str, token: str, key: str) -> str:
    lines = [
        f'name = "workerprobe-{name}"',
        'main = "harness.mjs"',
        f'compatibility_date = "{spec["compatibility_date"]}"',
        'compatibility_flags = ["nodejs_compat"]',
    ]
    for glob in spec.get("text_rules", []):
        lines += ["[[rules]]", f'globs = ["{glob}"]', 'type = "Text"', "fallthrough = true"]
    variables = {spec["key"]: key, "WORKERPROBE_EMULATOR": emulator, "WORKERPROBE_EMULATOR_TOKEN": token}
    variables |= {k: token if v == "EMULATOR_TOKEN" else v for k, v in spec.get("vars", {}).items()}
    lines += ["[vars]", *(f"{k} = {json.dumps(v)}" for k, v in variables.items())]
    for binding in spec.get("kv", []):
        lines += ["[[kv_namespaces]]", f'binding = "{binding}"', f'id = "{binding.lower()}-local"']
    for binding in spec.get("r2", []):
        bucket = binding.lower().replace("_", "-")
        lines += ["[[r2_buckets]]", f'binding = "{binding}"', f'bucket_name = "{bucket}-local"']
    return "\n".join(lines) + "\n"


@contextmanager
def worker(name: str, emulator: str, token: str, key: str) -> Iterator[str]:
    """The Worker served on a free loopback port until the block ends: its base URL (no /v1)."""
    home = build(name)
    spec = specs()[name]
    (home / "wrangler.toml").write_text(_config(name, spec, emulator, token, key))
    port = free_port()
    state = home / "state"
    shutil.rmtree(state, ignore_errors=True)  # every run starts with empty KV and R2
    command = [
        str(_tool()), "dev", "--config", str(home / "wrangler.toml"), "--ip", "127.0.0.1", "--port", str(port),
        "--local", "--persist-to", str(state), "--show-interactive-dev-session=false", "--log-level", "warn",
    ]  # fmt: skip
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "1", "NO_COLOR": "1"}
    log = (home / "wrangler.log").open("w")
    process = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"wrangler dev ended: {(home / 'wrangler.log').read_text()[-2000:]}")
            try:
                httpx.get(f"{url}/v1/models", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer within 120 s") from None
                time.sleep(0.5)
        yield url
    finally:
        stop(process, timeout=20)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(specs()))
    args = parser.parse_args(argv)
    token, key = secrets.token_hex(8), f"sk-{secrets.token_hex(8)}"
    with ExitStack() as stack:
        emulator = stack.enter_context(serve(["emulator"], env={"CF_API_TOKEN": token}))
        url = stack.enter_context(worker(args.name, emulator.url, token, key))
        print(f"{args.name}: {url}/v1 (API key {key}); ^C ends it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
