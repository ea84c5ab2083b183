"""What `make image` builds on: a Docker engine (the running one, or Debian's docker.io installed
and `dockerd` started here as root, stopped again at the end), and the Debian bases for each
platform (pulled where a registry answers, else built with debootstrap and loaded with the
platform in their metadata)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
UPSTREAM_BASE = "debian:bookworm-slim"  # the Dockerfile's FROM
LABEL = "org.workerprobe.base"
IMAGE = "workerprobe-gateway"
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
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
