"""The images of `make image` tried for real: each run on a network of its own with the emulator as
its upstream (time to `/health`, the machine it names, its user, idle RSS, the SDK scenario tests,
throughput), and the compose stack brought up with Redis and Prometheus and tried through."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import arm64 as chroot  # deploy/arm64.py: the throughput measure
from engine import IMAGE, MACHINES, PROJECT, Engine, Failed, Missing, host_arch, out, say, sh

from workerprobe.procs import free_port
from workerprobe.suite.cases import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


# --- 5. each image run ---------------------------------------------------------------------------


@dataclass
class Running:
    url: str
    container: str


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _wait(url: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _get(url, 2.0)[0] == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise Failed(f"{url} did not answer 200 within {timeout:.0f} s")


@contextlib.contextmanager
def container(docker: Engine, name: str, tag: str, args: list[str], command: list[str]) -> Iterator[str]:
    subprocess.run([docker.docker, "rm", "-f", name], capture_output=True)
    docker("run", "-d", "--name", name, *args, tag, *command)
    try:
        yield name
    finally:
        if subprocess.run([docker.docker, "inspect", name], capture_output=True).returncode == 0:
            logs = subprocess.run([docker.docker, "logs", "--tail", "30", name], capture_output=True, text=True)
            (ROOT / "build" / "image" / f"{name}.log").write_text(logs.stdout + logs.stderr)
        subprocess.run([docker.docker, "rm", "-f", name], capture_output=True)


def rss_mb(docker: Engine, name: str) -> float:
    """The resident memory of the container's main process, read on the host (under qemu-user that
    process is the emulator running the aarch64 Python, so it includes qemu's own)."""
    pid = docker("inspect", "--format", "{{.State.Pid}}", name)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise Failed(f"no VmRSS for {name}")


def scenarios(url: str, key: str, label: str) -> dict[str, object]:
    started = time.monotonic()
    junit = ROOT / "build" / "image" / f"scenarios-{label}.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SCENARIOS),
            "-q",
            "-p",
            "no:cacheprovider",
            "--max-neurons",
            "1e9",
            f"--junitxml={junit}",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "CLOUDFLARE_WORKER_URL": f"{url}/v1",  # the base URL an SDK is given
            "API_KEY": key,
            "WORKERPROBE_TARGET": "",
            "WORKERPROBE_TARGET_UPSTREAM": "emulator",
        },
        capture_output=True,
        text=True,
    )
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    say(f"  scenarios against {label}: {tail}")
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-3000:], sep="\n", file=sys.stderr)  # pytest.exit says why on stderr
        raise Failed(f"the SDK scenario tests failed against {label} (pytest exit {done.returncode})")
    counts = _junit_counts(junit)
    if counts["passed"] == 0:
        raise Failed(f"no scenario test passed against {label}")
    return {**counts, "seconds": round(time.monotonic() - started, 1)}


def _junit_counts(path: Path) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    total, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    return {"passed": total - failures - errors - skipped, "failed": failures + errors, "skipped": skipped}


def chat_rps(url: str, key: str, seconds: float) -> float:
    """Chat completions a second at 8 concurrent clients (the chroot check's run, for comparison)."""
    try:
        return chroot.rps(url, key, seconds, 8)
    except RuntimeError as failure:
        raise Failed(str(failure)) from failure


def run_images(docker: Engine, archs: list[str], seconds: float) -> dict[str, dict[str, object]]:
    key, token = f"sk-image-{secrets.token_hex(6)}", secrets.token_hex(8)
    network = f"{PROJECT}-net"
    subprocess.run([docker.docker, "network", "rm", network], capture_output=True)
    docker("network", "create", network)
    figures: dict[str, dict[str, object]] = {}
    try:
        emulator_port = free_port()
        with container(
            docker,
            f"{PROJECT}-emulator",
            f"{IMAGE}:{host_arch()}",
            [
                "--network",
                network,
                "--network-alias",
                "emulator",
                "-e",
                f"CF_API_TOKEN={token}",
                "-p",
                f"127.0.0.1:{emulator_port}:8788",
                # its own check, on its own port (the image's HEALTHCHECK is the gateway's)
                "--health-cmd",
                "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8788/__emulator/usage')\"",
            ],
            ["workerprobe", "emulator", "--host", "0.0.0.0", "--port", "8788"],
        ):
            _wait(f"http://127.0.0.1:{emulator_port}/__emulator/usage", 120)
            for arch in archs:
                port = free_port()
                name = f"{PROJECT}-gateway-{arch}"
                args = [
                    "--network",
                    network,
                    "-p",
                    f"127.0.0.1:{port}:8787",
                    "-e",
                    f"API_KEY={key}",
                    "-e",
                    "CF_API_BASE_URL=http://emulator:8788/client/v4",
                    "-e",
                    "CF_ACCOUNT_ID=image-check",
                    "-e",
                    f"CF_API_TOKEN={token}",
                    "--health-interval",
                    "1s",
                ]
                started = time.monotonic()
                with container(docker, name, f"{IMAGE}:{arch}", args, []):
                    url = f"http://127.0.0.1:{port}"
                    healthy_s = _wait(f"{url}/health", 300)
                    health = json.loads(_get(f"{url}/health")[1])
                    # Docker's own check (the image's HEALTHCHECK, polled every second here) may
                    # fail while a slow start outlasts its start period, then pass.
                    while docker("inspect", "--format", "{{.State.Health.Status}}", name) != "healthy":
                        if time.monotonic() - started > 300:
                            break
                        time.sleep(0.2)
                    docker_health = docker("inspect", "--format", "{{.State.Health.Status}}", name)
                    docker_healthy_s = time.monotonic() - started
                    user = docker("exec", name, "id", "-u")
                    time.sleep(3)
                    idle = rss_mb(docker, name)
                    say(
                        f"{arch}: /health after {healthy_s:.1f} s says machine={health['machine']}; docker health "
                        f"{docker_health} after {docker_healthy_s:.1f} s; uid {user}; idle RSS {idle} MB"
                    )
                    if health["machine"] != MACHINES[arch]:
                        raise Failed(f"the {arch} container runs on {health['machine']}")
                    if user != "10001":
                        raise Failed(f"the {arch} container runs as uid {user}, not 10001")
                    if docker_health != "healthy":
                        raise Failed(f"the {arch} container's health check says {docker_health}")
                    tests = scenarios(url, key, f"the {arch} container")
                    rps = chat_rps(url, key, seconds)
                    figures[arch] = {
                        "machine": health["machine"],
                        "python": health["python"],
                        "uid": int(user),
                        "start_to_health_s": round(healthy_s, 2),
                        "start_to_docker_healthy_s": round(docker_healthy_s, 2),
                        "idle_rss_mb": idle,
                        "rss_after_scenarios_mb": rss_mb(docker, name),
                        "scenarios": tests,
                        "chat_rps_c8": round(rps, 1),
                    }
    finally:
        subprocess.run([docker.docker, "network", "rm", network], capture_output=True)
    return figures


# --- 6. compose ----------------------------------------------------------------------------------


def compose_check(docker: Engine, base_tag: str, local_services: bool) -> dict[str, object]:
    if not docker.compose:
        raise Missing("no docker compose: install Debian's docker-compose")
    key, token = f"sk-compose-{secrets.token_hex(6)}", secrets.token_hex(8)
    port, prometheus_port = free_port(), free_port()
    files = ["-f", str(ROOT / "compose.yaml")]
    if local_services:
        files += ["-f", str(ROOT / "deploy" / "compose.local.yaml")]
    compose = [*docker.compose, "-p", PROJECT, *files, "--profile", "offline"]
    env = {
        **os.environ,
        "API_KEY": key,
        "CF_API_TOKEN": token,
        "CF_API_BASE_URL": "http://emulator:8788/client/v4",
        "GATEWAY_ADDRESS": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "PROMETHEUS_PORT": str(prometheus_port),
        "WORKERPROBE_BASE": base_tag,
        "WORKERPROBE_GATEWAY_FREE_PLAN": "false",
    }
    figures: dict[str, object] = {"local_service_images": local_services}
    sh([*compose, "config", "-q"], env=env, cwd=ROOT)
    started = time.monotonic()
    if local_services:
        sh([*compose, "build", "redis", "prometheus"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        figures["service_images_build_s"] = round(time.monotonic() - started, 1)
    try:
        up = time.monotonic()
        sh([*compose, "up", "-d"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/ready", 180)
        figures["up_to_ready_s"] = round(time.monotonic() - up, 1)
        states = out([*compose, "ps"], env=env, cwd=ROOT)
        say("compose up:\n" + "\n".join(f"    {line}" for line in states.splitlines()))
        deadline = time.monotonic() + 120
        unhealthy = ["?"]
        while time.monotonic() < deadline:
            ids = out([*compose, "ps", "-q"], env=env, cwd=ROOT).split()
            health = [
                docker(
                    "inspect",
                    "--format",
                    "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                    cid,
                )
                for cid in ids
            ]
            unhealthy = [h for h in health if not h.endswith(("healthy", "running")) or h.endswith("unhealthy")]
            if len(ids) == 4 and not unhealthy:
                break
            time.sleep(1)
        if unhealthy:
            raise Failed(f"compose services not healthy: {unhealthy}")
        figures["services"] = sorted(health)
        figures["scenarios"] = scenarios(url, key, "the compose stack")
        keys = int(out([*compose, "exec", "-T", "redis", "redis-cli", "dbsize"], env=env, cwd=ROOT) or 0)
        if keys == 0:
            raise Failed("the gateway in compose stored nothing in Redis")
        figures["redis_keys_after_scenarios"] = keys
        query = f"http://127.0.0.1:{prometheus_port}/api/v1/query?query=up%7Bjob%3D%22workerprobe-gateway%22%7D"
        deadline = time.monotonic() + 90
        value = None
        while time.monotonic() < deadline:
            status, body = _get(query)
            if status == 200:
                result = json.loads(body)["data"]["result"]
                if result:
                    value = result[0]["value"][1]
                    if value == "1":
                        break
            time.sleep(2)
        if value != "1":
            raise Failed(f"Prometheus's up for the gateway is {value}")
        figures["prometheus_up"] = 1
        say(f"compose: scenarios green through the stack on Redis ({keys} keys), Prometheus up=1")
    finally:
        sh([*compose, "down", "-v"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        left = out([docker.docker, "volume", "ls", "-q", "--filter", f"name={PROJECT}"])
        figures["volumes_left_after_down"] = len(left.split())
    if figures["volumes_left_after_down"]:
        raise Failed(f"compose down -v left volumes: {left}")
    return figures
