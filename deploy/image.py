"""`make image`: the gateway's container image built and run for real, amd64 and arm64, and the
compose stack brought up with Redis and Prometheus.

1. The engine: the running Docker engine, or (as root, where none runs) Debian's docker.io
   installed and `dockerd` started here, and stopped again at the end.
2. The bases: `debian:bookworm-slim` pulled for each platform when a registry answers; otherwise
   built with debootstrap (minbase) and loaded with the platform in its metadata. Either way
   tagged `workerprobe/base:bookworm-slim-<arch>` (and `debian:bookworm-slim` for the host's own
   platform when no such image exists), and reused after.
3. The wheels: the project's wheel and its dependencies resolved for each platform's Python
   (uv, for bookworm's Python 3.11.2 on that machine) and downloaded on the host as binary wheels
   into build/image/wheels/<arch>/. The build installs from there with `--no-index`: it reaches
   no package index, so no certificate or token is given to it.
4. Both images built (`workerprobe-gateway:<arch>`): amd64 natively, arm64 under qemu-user, by
   buildx where the engine has it and the legacy builder otherwise; the architecture in each
   image's metadata checked; no certificate, `.env` or token in any layer (checked on the files).
5. Each image run on a network of its own, the emulator (amd64 image) as its upstream: time from
   start to `/health`, the machine it names, its user, its idle RSS, then the SDK scenario tests
   against it, and its throughput beside the other platform's.
6. Compose: compose.yaml with deploy/compose.local.yaml (Redis and Prometheus built from Debian's
   packages on the same base where no registry answers), up with the emulator, the scenario tests
   through the stack, the gateway's state seen in Redis, Prometheus's `up` for the gateway, then
   down with its volumes.

Figures go to reports/image.json. What cannot be done here is said (`NOT RUN: ...`, exit 2); a
step that fails is `FAILED: ...`, exit 1. Nothing is reported that was not done.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "arm64"))
import check as chroot  # noqa: E402  (arm64/check.py: root, qemu-user-static and binfmt_misc for aarch64)

from workerprobe.procs import free_port  # noqa: E402
from workerprobe.suite.cases import SCENARIOS  # noqa: E402

SUITE = "bookworm"
PYTHON = "3.11.2"  # bookworm's python3: the wheels are resolved for it
MIRROR = "http://deb.debian.org/debian"
UPSTREAM_BASE = "debian:bookworm-slim"  # the Dockerfile's FROM
IMAGE = "workerprobe-gateway"
WHEELS = ROOT / "build" / "image" / "wheels"
REPORT = ROOT / "reports" / "image.json"
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
LABEL = "org.workerprobe.base"
PROJECT = "wpimagecheck"  # containers, networks and the compose project of this check


class Missing(Exception):
    """Something this machine lacks: the check is not run (exit 2)."""


class Failed(Exception):
    """A step that ran and failed (exit 1)."""


def say(message: str) -> None:
    print(f"image: {message}", flush=True)


def sh(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def out(command: list[str], **kwargs: object) -> str:
    return sh(command, capture_output=True, **kwargs).stdout.strip()


# --- 1. the engine -------------------------------------------------------------------------------


@dataclass
class Engine:
    docker: str
    compose: list[str]
    buildx: bool
    started: subprocess.Popen[bytes] | None = None
    notes: list[str] = field(default_factory=list)

    def __call__(self, *args: str, **kwargs: object) -> str:
        return out([self.docker, *args], **kwargs)

    def ok(self, *args: str) -> bool:
        return subprocess.run([self.docker, *args], capture_output=True).returncode == 0


def _answers(docker: str) -> bool:
    return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0


@contextlib.contextmanager
def engine(install: bool) -> Iterator[Engine]:
    docker = shutil.which("docker")
    started = None
    if docker is None or not _answers(docker):
        if os.geteuid() != 0:
            raise Missing("no Docker engine answers, and only root may start one here (sudo make image)")
        if shutil.which("dockerd") is None:
            if not install or shutil.which("apt-get") is None:
                raise Missing("no Docker engine: install Debian's docker.io (apt-get install docker.io docker-compose)")
            say("no Docker engine: installing Debian's docker.io and docker-compose")
            _apt("docker.io", "docker-compose")
        docker = shutil.which("docker")
        if docker is None:
            raise Missing("docker.io installed no docker client")
        log = Path(tempfile.gettempdir()) / "workerprobe-dockerd.log"
        say(f"starting dockerd (log {log}); it is stopped when the check ends")
        with log.open("ab") as sink:
            started = subprocess.Popen(["dockerd"], stdout=sink, stderr=sink, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _answers(docker):
            if started.poll() is not None or time.monotonic() > deadline:
                raise Missing(f"dockerd did not come up (see {log})")
            time.sleep(0.5)
    compose = _compose(docker)
    buildx = subprocess.run([docker, "buildx", "version"], capture_output=True).returncode == 0
    found = Engine(docker, compose, buildx, started)
    try:
        yield found
    finally:
        if started is not None:
            say("stopping the dockerd this check started")
            started.terminate()
            try:
                started.wait(timeout=30)
            except subprocess.TimeoutExpired:
                started.kill()


def _compose(docker: str) -> list[str]:
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return []


def _apt(*packages: str) -> None:
    done = subprocess.run(["apt-get", "install", "-y", "-q", *packages], capture_output=True, text=True)
    if done.returncode != 0:
        sh(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)
        sh(["apt-get", "install", "-y", "-q", *packages], stdout=subprocess.DEVNULL)


# --- 2. the bases --------------------------------------------------------------------------------


def base(docker: Engine, arch: str, rebuild: bool) -> tuple[str, str, float]:
    """The base image for `arch`: (tag, how it came, seconds)."""
    tag = f"workerprobe/base:{SUITE}-slim-{arch}"
    if not rebuild and docker.ok("image", "inspect", tag):
        return tag, "cached", 0.0
    started = time.monotonic()
    pulled = subprocess.run(
        [docker.docker, "pull", "--platform", f"linux/{arch}", UPSTREAM_BASE], capture_output=True, text=True
    )
    if pulled.returncode == 0:
        docker("tag", UPSTREAM_BASE, tag)
        return tag, f"pulled {UPSTREAM_BASE}", time.monotonic() - started
    reason = (pulled.stderr.strip().splitlines() or ["no answer"])[-1][-90:]
    say(f"no registry answers (...{reason}); building the {arch} base with debootstrap")
    if os.geteuid() != 0:
        raise Missing("no registry answers and debootstrap needs root")
    if shutil.which("debootstrap") is None:
        _apt("debootstrap")
    with tempfile.TemporaryDirectory(prefix=f"base-{arch}-", dir=ROOT / "build") as scratch:
        tree = Path(scratch) / "rootfs"
        try:
            sh(
                ["debootstrap", f"--arch={arch}", "--variant=minbase", SUITE, str(tree), MIRROR],
                stdout=subprocess.DEVNULL,
            )
        finally:
            for point in ("proc", "sys", "dev/pts", "dev"):
                if os.path.ismount(tree / point):
                    subprocess.run(["umount", "-l", str(tree / point)], check=False)
        # What a slim image leaves out: the package cache and lists, documentation.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            for path in (tree / junk).glob("*"):
                if path.is_file() or path.is_symlink():
                    path.unlink()
                elif path.is_dir() and path.name != "partial":
                    shutil.rmtree(path)
        load_rootfs(docker, tree, arch, tag)
    if not docker.ok("image", "inspect", UPSTREAM_BASE) and arch == host_arch():
        docker("tag", tag, UPSTREAM_BASE)  # so that a plain `docker build` finds the Dockerfile's FROM
        docker.notes.append(f"{UPSTREAM_BASE} is the debootstrap base (no registry answered)")
    return tag, "debootstrap", time.monotonic() - started


def load_rootfs(docker: Engine, tree: Path, arch: str, tag: str) -> None:
    """The root filesystem as a one-layer image whose metadata names `arch`: `docker import`
    of this engine records the host's architecture whatever --platform says, `docker load` of an
    image archive keeps what its config says."""
    with tempfile.TemporaryDirectory(dir=tree.parent) as staging:
        stage = Path(staging)
        layer = stage / "layer.tar"
        with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as archive:
            for entry in sorted(tree.iterdir()):
                archive.add(entry, arcname=entry.name)
        digest = hashlib.sha256(layer.read_bytes()).hexdigest()
        config = {
            "architecture": arch,
            "os": "linux",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": {
                "Cmd": ["bash"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Labels": {LABEL: f"debootstrap {SUITE} minbase {arch}"},
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}"]},
            "history": [{"created_by": f"debootstrap --variant=minbase --arch={arch} {SUITE} {MIRROR}"}],
        }
        blob = json.dumps(config).encode()
        name = hashlib.sha256(blob).hexdigest()
        (stage / f"{name}.json").write_bytes(blob)
        (stage / "layer").mkdir()
        layer.rename(stage / "layer" / "layer.tar")
        manifest = [{"Config": f"{name}.json", "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]
        (stage / "manifest.json").write_text(json.dumps(manifest))
        image = stage.parent / "image.tar"
        with tarfile.open(image, "w") as archive:
            for entry in ("manifest.json", f"{name}.json", "layer"):
                archive.add(stage / entry, arcname=entry)
        docker("load", "-i", str(image))
        image.unlink()


def host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


# --- 3. the wheels -------------------------------------------------------------------------------


def wheels(arch: str) -> tuple[int, float]:
    """build/image/wheels/<arch>/: the project's wheel and its dependencies for that platform."""
    started = time.monotonic()
    folder = WHEELS / arch
    deps, project = folder / "deps", folder / "project"
    shutil.rmtree(project, ignore_errors=True)
    deps.mkdir(parents=True, exist_ok=True)
    project.mkdir(parents=True)
    machine = MACHINES[arch]
    pinned = folder / "requirements.txt"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise Missing("uv is not installed (it resolves the dependencies for each platform): make install")
    # Resolved for the image's own Python and machine, markers included (pip download would
    # evaluate them for the host's Python).
    sh(
        [
            uv,
            "pip",
            "compile",
            str(ROOT / "pyproject.toml"),
            "--python-version",
            PYTHON,
            "--python-platform",
            f"{machine}-manylinux_2_36",
            "--only-binary",
            ":all:",
            "--no-header",
            "--no-annotate",
            "-q",
            "-o",
            str(pinned),
        ],
        cwd=ROOT,
    )
    tags = [
        f"--platform={t}_{machine}"
        for t in ("manylinux_2_36", "manylinux_2_28", "manylinux_2_17", "manylinux2014", "linux")
    ]
    pip = [sys.executable, "-m", "pip"]
    sh(
        [
            *pip,
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            *tags,
            "-d",
            str(deps),
            "-r",
            str(pinned),
        ],
        stderr=subprocess.DEVNULL,
    )
    # The folder is kept between runs (pip skips what it has): what is no longer pinned goes.
    wanted = {
        (canonicalize_name(name), Version(version))
        for name, _, version in (line.partition("==") for line in pinned.read_text().split())
        if version
    }
    for wheel in deps.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if (name, version) not in wanted:
            wheel.unlink()
    if len(list(deps.glob("*.whl"))) != len(wanted):
        raise Failed(f"{arch}: {len(wanted)} dependencies pinned, {len(list(deps.glob('*.whl')))} wheels downloaded")
    sh(
        [*pip, "wheel", "--quiet", "--no-deps", "-w", str(project), str(ROOT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return len(wanted) + 1, time.monotonic() - started


# --- 4. the images -------------------------------------------------------------------------------


def build(docker: Engine, arch: str, base_tag: str) -> dict[str, object]:
    tag = f"{IMAGE}:{arch}"
    started = time.monotonic()
    if docker.buildx:
        command = [
            docker.docker,
            "buildx",
            "build",
            "--load",
            "--platform",
            f"linux/{arch}",
            "--build-arg",
            f"BASE={base_tag}",
            "-t",
            tag,
            str(ROOT),
        ]
        env = dict(os.environ)
        how = "buildx"
    else:
        # The legacy builder runs every RUN of an arm64 base under qemu-user (binfmt_misc).
        command = [
            docker.docker,
            "build",
            "--build-arg",
            f"BASE={base_tag}",
            "--build-arg",
            f"TARGETARCH={arch}",
            "--force-rm",  # no stopped container left behind by a failed step
            "-t",
            tag,
            str(ROOT),
        ]
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        how = "legacy builder"
    log = ROOT / "build" / "image" / f"build-{arch}.log"
    before = subprocess.run([docker.docker, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    after = subprocess.run([docker.docker, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True)
    if before.returncode == 0 and done.returncode == 0 and before.stdout.strip() != after.stdout.strip():
        # The image this build replaced, now untagged: removed, so that runs do not fill the disk.
        # (A build wholly from cache gives the same image: nothing is replaced.)
        subprocess.run([docker.docker, "rmi", before.stdout.decode().strip()], capture_output=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print((done.stdout + done.stderr)[-4000:], file=sys.stderr)
        raise Failed(f"the {arch} image did not build (log {log})")
    seconds = time.monotonic() - started
    context = next(
        (
            line.split("daemon", 1)[1].strip()
            for line in done.stdout.splitlines()
            if line.startswith("Sending build context")
        ),
        "",
    )
    cached = sum(1 for line in done.stdout.splitlines() if "Using cache" in line)
    inspected = json.loads(docker("image", "inspect", tag))[0]
    if inspected["Architecture"] != arch:
        raise Failed(f"the {arch} image's metadata says {inspected['Architecture']}")
    return {
        "image": tag,
        "builder": how,
        "build_s": round(seconds, 1),
        "cached_steps": cached,
        "context": context,
        "size_mb": round(inspected["Size"] / 1e6, 1),
        "architecture": inspected["Architecture"],
        "os": inspected["Os"],
    }


def leaks(docker: Engine, tag: str, forbidden: dict[str, bytes]) -> list[str]:
    """Files of the image that must not be there: a `.env`, the host's CA bundle or a certificate
    added on the host, pip settings, or any of `forbidden`'s values; and build settings that name one."""
    host_certs = _host_only_certificates()
    bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    bundle_digest = hashlib.sha256(bundle.read_bytes()).hexdigest() if bundle.exists() else ""
    found: list[str] = []
    container = docker("create", tag)
    try:
        export = subprocess.Popen([docker.docker, "export", container], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as archive:
            for member in archive:
                name = member.name.lstrip("./")
                base_name = name.rsplit("/", 1)[-1]
                if base_name == ".env" or base_name.startswith(".env.") or base_name in {"pip.conf", ".netrc"}:
                    found.append(f"/{name}")
                if not member.isfile() or member.size > 4_000_000:
                    continue
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                if bundle_digest and hashlib.sha256(data).hexdigest() == bundle_digest:
                    found.append(f"/{name} (the host's CA bundle)")
                for cert_name, body in host_certs.items():
                    if body in data:
                        found.append(f"/{name} (the host's certificate {cert_name})")
                for what, value in forbidden.items():
                    if value and value in data:
                        found.append(f"/{name} ({what})")
        export.wait()
    finally:
        docker("rm", container)
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    settings = docker("image", "inspect", "--format", "{{json .Config.Env}}", tag)
    for what, value in {"PIP_CERT": b"PIP_CERT", "SSL_CERT_FILE": b"SSL_CERT_FILE", **forbidden}.items():
        if value and (value.decode() in history or value.decode() in settings):
            found.append(f"the image's history or environment names {what}")
    return found


def _host_only_certificates() -> dict[str, bytes]:
    """Certificates the host added to its trust store (a TLS proxy's, say): a line of each one's body."""
    added: dict[str, bytes] = {}
    for path in Path("/usr/local/share/ca-certificates").rglob("*.crt"):
        lines = [line for line in path.read_bytes().splitlines() if line and not line.startswith(b"-----")]
        if len(lines) > 4:
            added[path.name] = lines[len(lines) // 2]  # a line from the middle: the key, not a header
    return added


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
            "CLOUDFLARE_WORKER_URL": url,
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
        print(done.stdout[-6000:], file=sys.stderr)
        raise Failed(f"the SDK scenario tests failed against {label}")
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


# --- the run -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", default="amd64,arm64", help="platforms to build and run (default %(default)s)")
    parser.add_argument("--no-compose", action="store_true", help="skip the compose stack")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install docker.io or debootstrap")
    parser.add_argument("--rebuild-base", action="store_true", help="build or pull the base images again")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    args = parser.parse_args()
    archs = [a for a in args.arch.split(",") if a]
    unknown = set(archs) - set(MACHINES)
    if unknown:
        parser.error(f"unknown --arch {', '.join(sorted(unknown))} (amd64, arm64)")
    started = time.monotonic()
    (ROOT / "build" / "image").mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        if any(a != host_arch() for a in archs):
            chroot.prepare_host(install=not args.no_install)  # qemu-user-static and binfmt_misc
        with engine(install=not args.no_install) as docker:
            report["engine"] = {
                "server": docker("version", "--format", "{{.Server.Version}}"),
                "buildx": docker.buildx,
                "compose": " ".join(docker.compose),
                "started_here": docker.started is not None,
            }
            bases, builds = {}, {}
            if host_arch() not in archs:
                archs = [host_arch(), *archs]  # the emulator container runs on the host's platform
            for arch in archs:
                tag, how, seconds = base(docker, arch, args.rebuild_base)
                bases[arch] = {"tag": tag, "how": how, "seconds": round(seconds, 1)}
                say(f"{arch} base {tag}: {how}" + (f" in {seconds:.0f} s" if seconds else ""))
                count, seconds = wheels(arch)
                say(f"{arch} wheels: {count} in build/image/wheels/{arch} ({seconds:.0f} s)")
                builds[arch] = build(docker, arch, tag)
                say(
                    f"{arch} image built by the {builds[arch]['builder']} in {builds[arch]['build_s']:.0f} s "
                    f"({builds[arch]['cached_steps']} steps cached), {builds[arch]['size_mb']} MB, context "
                    f"{builds[arch]['context']}, metadata {builds[arch]['architecture']}"
                )
                found = leaks(docker, f"{IMAGE}:{arch}", {"a .env value": _env_values()})
                if found:
                    raise Failed(f"the {arch} image holds what it must not: {found[:5]}")
                builds[arch]["secrets_found"] = 0
            previous = subprocess.run(
                [docker.docker, "image", "inspect", "--format", "{{.Id}}", f"{IMAGE}:latest"], capture_output=True
            )
            docker("tag", f"{IMAGE}:{host_arch()}", f"{IMAGE}:latest")
            current = docker("image", "inspect", "--format", "{{.Id}}", f"{IMAGE}:latest")
            if previous.returncode == 0 and previous.stdout.decode().strip() != current:
                # the image :latest named before, if nothing else names it now
                subprocess.run([docker.docker, "rmi", previous.stdout.decode().strip()], capture_output=True)
            report["bases"], report["images"] = bases, builds
            report["manifest"] = (
                "buildx can make one: docker buildx build --platform linux/amd64,linux/arm64 --push"
                if docker.buildx
                else "none: this engine has no buildx, and `docker manifest` makes lists only in a registry"
            )
            report["runs"] = run_images(docker, archs, args.seconds)
            if "arm64" in report["runs"] and "amd64" in report["runs"]:
                runs = report["runs"]
                report["arm64_emulated_over_native_rps"] = round(
                    float(runs["arm64"]["chat_rps_c8"]) / float(runs["amd64"]["chat_rps_c8"]), 3
                )  # type: ignore[index]
            if not args.no_compose:
                local = bases[host_arch()]["how"] != f"pulled {UPSTREAM_BASE}" or not docker.ok(
                    "pull", "redis:7-bookworm"
                )
                report["compose"] = compose_check(docker, bases[host_arch()]["tag"], local)
            report["notes"] = docker.notes
    except Missing as missing:
        say(f"NOT RUN: {missing}")
        return 2
    except (Failed, subprocess.CalledProcessError) as failure:
        say(f"FAILED: {failure}")
        return 1
    report["seconds"] = round(time.monotonic() - started, 1)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    say(f"PASSED in {report['seconds']:.0f} s: {', '.join(archs)} built and run, scenarios green ({REPORT})")
    return 0


def _env_values() -> bytes:
    """A secret of the repository's .env, if it has one (none of it may reach an image)."""
    env = ROOT / ".env"
    if not env.exists():
        return b""
    for line in env.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() in {"API_KEY", "CF_API_TOKEN"} and len(value.strip()) >= 8:
            return value.strip().encode()
    return b""


if __name__ == "__main__":
    raise SystemExit(main())
