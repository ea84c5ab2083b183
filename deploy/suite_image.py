"""The suite's image (`workerprobe-suite`, deploy/suite.Dockerfile) run as a user runs it:
`docker run --rm -e API_KEY -v reports:/work/reports workerprobe-suite test [URL]`, its verdict
the container's exit code and its reports in the mounted folder. For the host's platform: against
the embedded default (inside the container) and against a target nobody here wrote the code of
(Cloudflare's `/ai/v1` as the emulator serves it, in a container of its own on the network);
for the other platform (under qemu-user, where one run takes minutes): `--version` and the
suite's libraries and plugin imported on that platform."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from engine import IMAGE, PROJECT, Engine, Failed, host_arch, say
from trial import _wait, container

from workerprobe.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
SUITE_IMAGE = "workerprobe-suite"


def _run(
    docker: Engine, tag: str, reports: Path, args: list[str], env: dict[str, str], network: str
) -> dict[str, object]:
    """One `docker run` of the suite's image: exit code, wall time, the verdict in the mounted folder."""
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    command = [docker.docker, "run", "--rm", "--network", network, "--user", f"{os.getuid()}:{os.getgid()}"]
    for name in env:
        command += ["-e", name]  # the value by the environment: never on a command line
    command += ["-v", f"{reports}:/work/reports", tag, *args]
    started = time.monotonic()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    (reports.parent / f"{reports.name}.log").write_text(done.stdout + done.stderr)
    latest = reports / "latest" / "summary.json"
    if not latest.exists():
        raise Failed(
            f"{tag} {' '.join(args[:1])} wrote no summary in the mounted folder (exit {done.returncode}): "
            f"{(done.stdout + done.stderr)[-1500:]}"
        )
    summary = json.loads(latest.read_text())
    if summary["exit_code"] != done.returncode and done.returncode != 0:
        raise Failed(f"{tag}: the container's exit {done.returncode} is not the verdict's {summary['exit_code']}")
    return {
        "exit": done.returncode,
        "verdict": summary["verdict"],
        "reason": summary["reason"],
        "seconds": round(seconds, 1),
        "junit": (reports / summary["run_id"] / "junit.xml").exists(),
        "scenarios": summary["scenarios"],
        "families": {f: row["python"] for f, row in summary["families"].items()},
    }


def suite_check(docker: Engine, archs: list[str]) -> dict[str, object]:
    token = secrets.token_hex(8)
    network = f"{PROJECT}-suite-net"
    subprocess.run([docker.docker, "network", "rm", network], capture_output=True)
    docker("network", "create", network)
    figures: dict[str, object] = {}
    out = ROOT / "build" / "image" / "suite-runs"
    try:
        port = free_port()
        with container(
            docker,
            f"{PROJECT}-suite-emulator",
            f"{IMAGE}:{host_arch()}",
            ["--network", network, "--network-alias", "emulator", "-e", f"CF_API_TOKEN={token}",
             "-p", f"127.0.0.1:{port}:8788"],
            ["workerprobe", "emulator", "--host", "0.0.0.0", "--port", "8788"],
        ):  # fmt: skip
            _wait(f"http://127.0.0.1:{port}/__emulator/usage", 120)
            foreign = "http://emulator:8788/client/v4/accounts/workerprobe/ai/v1"
            for arch in archs:
                tag = f"{SUITE_IMAGE}:{arch}"
                version = docker("run", "--rm", tag, "--version")
                runs: dict[str, object] = {"version": version}
                if arch == host_arch():
                    runs["embedded_default"] = _run(docker, tag, out / f"{arch}-embedded", ["test"], {}, network)
                    runs["foreign_ai_v1"] = _run(
                        docker, tag, out / f"{arch}-ai-v1", ["test", foreign], {"API_KEY": token}, network
                    )
                else:  # under qemu-user a run takes minutes (480 s for the chat scenarios alone, measured):
                    # the suite's libraries and plugin imported on that platform's Python
                    started = time.monotonic()
                    imports = "import schemathesis, openai, locust, pytest_asyncio, workerprobe.suite.plugin"
                    docker("run", "--rm", "--entrypoint", "python3", tag, "-c", imports)
                    runs["imports_s"] = round(time.monotonic() - started, 1)
                    say(f"{tag}: the suite's libraries and plugin import ({runs['imports_s']:.0f} s under qemu)")
                for name, run in runs.items():
                    if isinstance(run, dict):
                        junit = "written" if run["junit"] else "MISSING"
                        say(f"{tag} {name}: exit {run['exit']}, {run['verdict']} ({run['reason']}), "
                            f"{run['seconds']:.0f} s, junit.xml {junit}")  # fmt: skip
                        if not run["junit"] or run["exit"] not in (0, 1):
                            raise Failed(f"{tag} {name}: exit {run['exit']} ({run['reason']})")
                figures[arch] = runs
            embedded = figures[host_arch()]["embedded_default"]  # type: ignore[index]
            if embedded["exit"] != 0:  # type: ignore[index]
                raise Failed(f"the suite's image against the embedded default: {embedded}")
    finally:
        subprocess.run([docker.docker, "network", "rm", network], capture_output=True)
    return figures
