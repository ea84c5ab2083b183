"""Hostile servers (workerprobe.hostile) against the project's three readers of the network:

    hostile-upstream  the gateway in front of an upstream that misbehaves: the gateway's RSS at the
                      start, at its peak and after (goals: peak under 300 MB, after within 20 MB of
                      the start), and every answer an error in the envelope (502/504)
    hostile-test      `workerprobe test` against a target that misbehaves: wall time, the peak RSS
                      of its process tree, its exit (goals: 1 or 2, by its own deadline, under 1 GB)
    hostile-load      `workerprobe load` against it: the same
    slow-body-flood   connections with a valid key that send their headers and then a byte a second
                      of a 4 MB body, 10 ms apart, past the gateway's 1,024 open files: /health
                      probes that failed (goal: 0)

A `--tree` of another checkout (with its own .venv) measures that tree's gateway and commands with
this tree's hostile server: the figures before a change, side by side. Every run is bounded (a
guard kills a process tree past `GUARD_S` or `GUARD_MB`, and says so).

    .venv/bin/python bench/chaos_hostile.py [--tree ../other-checkout] [--modes huge-body drip ...]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from workerprobe.catalogue import load as load_catalogue
from workerprobe.hostile import MODES
from workerprobe.procs import free_port, gateway_env, serve, stop, wait_listening

ROOT = Path(__file__).resolve().parents[1]
MODEL = load_catalogue().default("text-generation").name
KEY = "sk-hostile"
GUARD_S = 600.0  # a run of a command past this is killed (and reported as such)
LIMITS = {"guard_s": GUARD_S}
GUARD_MB = 6000.0  # a process tree past this is killed (and reported as such)
STREAMING = ("endless-stream", "drip-stream")


def _tree_rss(process: psutil.Process) -> float:
    """MB resident in a process and its children."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


class Watch:
    """Samples a process tree's RSS every 20 ms until stopped; kills the tree past GUARD_MB."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = _tree_rss(self.process)
        self.killed = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = _tree_rss(self.process)
            except psutil.Error:
                return
            self.peak = max(self.peak, now)
            if now > GUARD_MB and not self.killed:
                self.killed = f"killed by the bench at {now:.0f} MB"
                for proc in [*self.process.children(recursive=True), self.process]:
                    try:
                        proc.kill()
                    except psutil.Error:
                        pass
            time.sleep(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        try:
            return _tree_rss(self.process)
        except psutil.Error:
            return 0.0


@contextmanager
def hostile(mode: str) -> Iterator[str]:
    with serve(["--mode", mode], module="workerprobe.hostile") as server:
        yield server.url


def _python(tree: Path) -> str:
    return str(tree / ".venv" / "bin" / "python")


@contextmanager
def gateway_at(tree: Path, upstream: str, database: str, **settings: str) -> Iterator[tuple[str, int]]:
    """The gateway of `tree` in front of `upstream` (its URL and pid)."""
    port = free_port()
    env = {**os.environ, **gateway_env(upstream, api_key=KEY, token="t", database=database, **settings)}
    env["PYTHONPATH"] = str(tree / "src")
    process = subprocess.Popen(
        [_python(tree), "-m", "workerprobe", "gateway", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_listening("127.0.0.1", port, 30, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process)


def hostile_upstream(tree: Path, mode: str, folder: Path, requests: int = 16) -> dict[str, Any]:
    """The gateway of `tree` before, during and after `requests` chat completions (8 at a time)
    that its hostile upstream answers in `mode`."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    stream = mode in STREAMING
    statuses: list[int] = []
    outside = 0
    database = str(folder / f"{mode}.sqlite3")
    with hostile(mode) as upstream, gateway_at(tree, upstream, database, upstream_timeout_s="10") as (url, pid):
        proc = psutil.Process(pid)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as http:
            http.get("/v1/models")  # warm: what an idle gateway holds
            watch = Watch(pid)
            started = time.monotonic()

            def one() -> None:
                nonlocal outside
                try:
                    if stream:
                        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as answer:
                            for _ in answer.iter_bytes():
                                pass
                        statuses.append(answer.status_code)
                    else:
                        answer = http.post("/v1/chat/completions", json=body)
                        statuses.append(answer.status_code)
                        outside += not answer.text.startswith('{"error"')
                except httpx.HTTPError:
                    statuses.append(0)

            for _ in range(requests // 8):
                threads = [threading.Thread(target=one) for _ in range(8)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            wall = time.monotonic() - started
            time.sleep(2.0)  # what the gateway holds once the answers are done
            after = watch.stop()
            try:
                health: int | str = http.get("/health").status_code
            except httpx.HTTPError:
                health = "no answer: the gateway is gone"
        try:
            rss_after = proc.memory_info().rss / 1e6
        except psutil.Error:
            rss_after = 0.0
    return {
        "mode": mode,
        "requests": requests,
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "not_in_the_envelope": outside,
        "wall_s": round(wall, 1),
        "rss_start_mb": round(watch.start, 1),
        "rss_peak_mb": round(watch.peak, 1),
        "rss_after_mb": round(min(after, rss_after) if after else rss_after, 1),
        "health_after": health,
        "guard": watch.killed,
    }


def _command(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command with its tree's RSS watched, bounded by GUARD_S (killed past it)."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    watch = Watch(process.pid)
    started = time.monotonic()
    guard = ""
    try:
        output, _ = process.communicate(timeout=LIMITS["guard_s"])
    except subprocess.TimeoutExpired:
        guard = f"killed by the bench after {LIMITS['guard_s']:g} s"
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
    wall = time.monotonic() - started
    watch.stop()
    lines = [line for line in output.decode(errors="replace").splitlines() if line.startswith("workerprobe")]
    return {
        "exit": process.returncode,
        "wall_s": round(wall, 1),
        "rss_peak_mb": round(watch.peak, 1),
        "guard": guard or watch.killed,
        "last_line": lines[-1][:300] if lines else "",
    }


def hostile_suite(tree: Path, mode: str, deadline: float) -> dict[str, Any]:
    """`workerprobe test` of `tree` against a target that answers every request in `mode`."""
    workerprobe = str(tree / ".venv" / "bin" / "workerprobe")
    with hostile(mode) as target:
        reports = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-test-{secrets.token_hex(4)}"
        argv = [workerprobe, "test", f"{target}/v1", "--key", "sk-x", "--report", str(reports)]
        if "--deadline" in subprocess.run([workerprobe, "test", "--help"], capture_output=True, text=True).stdout:
            argv += ["--deadline", str(deadline), "--request-deadline", "10"]
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        return {"mode": mode, **_command(argv, env)}


def hostile_load(tree: Path, mode: str, seconds: float) -> dict[str, Any]:
    """`workerprobe load` of `tree` (a short steady profile) against a target in `mode`."""
    workerprobe = str(tree / ".venv" / "bin" / "workerprobe")
    with hostile(mode) as target:
        argv = [workerprobe, "load", f"{target}/v1", "--key", "sk-x", "--profile", "steady"]
        argv += ["--users", "4", "--seconds", str(seconds), "--classes", "StreamUser", "--max-neurons", "1000"]
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        return {"mode": mode, **_command(argv, env)}


def slow_body_flood(tree: Path, upstream: str, folder: Path, connections: int = 1100) -> dict[str, Any]:
    """Connections with a valid key in their body phase, 10 ms apart, past 1,024 open files."""
    port = free_port()
    env = {**os.environ, **gateway_env(upstream, api_key=KEY, token="t", database=str(folder / "flood.sqlite3"))}
    env["PYTHONPATH"] = str(tree / "src")
    argv = ["prlimit", "--nofile=1024:1024", _python(tree), "-m", "workerprobe", "gateway", "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    head = (
        b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n{"
    )
    held: list[socket.socket] = []
    probes = failed = 0
    stop_drip = threading.Event()

    def drip() -> None:
        while not stop_drip.wait(1.0):
            for sock in list(held):
                try:
                    sock.send(b" ")
                except OSError:
                    pass

    dripper = threading.Thread(target=drip, daemon=True)
    try:
        wait_listening("127.0.0.1", port, 30, process)
        dripper.start()
        for i in range(connections):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(head)
                held.append(sock)
            except OSError:
                pass
            time.sleep(0.01)
            if i % 13 == 0:  # a /health probe every 130 ms, from a fresh connection
                probes += 1
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
                        probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                        failed += not probe.recv(64).startswith(b"HTTP/1.1 200")
                except OSError:
                    failed += 1
    finally:
        stop_drip.set()
        for sock in held:
            sock.close()
        stop(process)
    return {"connections": connections, "health_probes": probes, "health_failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(ROOT), help="the checkout measured (its .venv and src)")
    parser.add_argument("--modes", nargs="+", default=sorted(MODES), choices=sorted(MODES))
    parser.add_argument("--steps", nargs="+", default=["upstream", "test", "load", "flood"])
    parser.add_argument("--deadline", type=float, default=120.0, help="workerprobe test --deadline")
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--out", default=str(ROOT / "reports" / "chaos-hostile.json"))
    parser.add_argument("--guard-s", type=float, default=GUARD_S, help="a command running longer is killed")
    args = parser.parse_args(argv)
    LIMITS["guard_s"] = args.guard_s
    tree = Path(args.tree).resolve()
    import tempfile

    results: dict[str, Any] = {"tree": str(tree)}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for step in args.steps:
            if step == "flood":
                with serve(["emulator"], env={"CF_API_TOKEN": "t"}) as emulator:
                    results["slow-body-flood"] = slow_body_flood(tree, emulator.url, folder)
                print(json.dumps({"slow-body-flood": results["slow-body-flood"]}), flush=True)
                continue
            for mode in args.modes:
                if step == "upstream":
                    row = hostile_upstream(tree, mode, folder)
                elif step == "test":
                    row = hostile_suite(tree, mode, args.deadline)
                elif step == "load":
                    row = hostile_load(tree, mode, args.load_seconds)
                else:
                    continue
                results.setdefault(f"hostile-{step}", []).append(row)
                print(json.dumps({f"hostile-{step}": row}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
