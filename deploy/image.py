"""`make image`: the gateway's container image built and run for real, amd64 and arm64, the
suite's image (workerprobe-suite) built and run as a user runs it, and the compose stack brought up
with Redis and Prometheus.

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
6. The suite's image (deploy/suite.Dockerfile, the [suite] extra's wheels for each platform):
   `docker run --rm -v reports:/work/reports workerprobe-suite test [URL]` against the embedded
   default and against the emulator's /ai/v1 on the host's platform (exit code, verdict and
   junit.xml in the mounted folder); on the other, under qemu, `--version` and the suite's
   libraries and plugin imported (deploy/suite_image.py).
7. Compose: compose.yaml with deploy/compose.local.yaml (Redis and Prometheus built from Debian's
   packages on the same base where no registry answers), up with the emulator, the scenario tests
   through the stack, the gateway's state seen in Redis, Prometheus's `up` for the gateway, then
   down with its volumes.

Figures go to reports/image.json. What cannot be done here is said (`NOT RUN: ...`, exit 2); a
step that fails is `FAILED: ...`, exit 1. Nothing is reported that was not done.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import arm64 as chroot  # deploy/arm64.py, beside this script: root, qemu-user-static and binfmt_misc for aarch64
from engine import IMAGE, MACHINES, UPSTREAM_BASE, Engine, Failed, Missing, base, engine, host_arch, say, sh
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from suite_image import SUITE_IMAGE, suite_check
from trial import compose_check, run_images

ROOT = Path(__file__).resolve().parent.parent

PYTHON = "3.11.2"  # bookworm's python3: the wheels are resolved for it
WHEELS = ROOT / "build" / "image" / "wheels"
REPORT = ROOT / "reports" / "image.json"


# --- 3. the wheels -------------------------------------------------------------------------------


def wheels(arch: str, extra: str = "") -> tuple[int, float]:
    """build/image/wheels/<arch>/: the project's wheel and its dependencies for that platform (with
    `extra`, e.g. the suite's: in suite-deps/)."""
    started = time.monotonic()
    folder = WHEELS / arch
    deps, project = folder / (f"{extra}-deps" if extra else "deps"), folder / "project"
    shutil.rmtree(project, ignore_errors=True)
    deps.mkdir(parents=True, exist_ok=True)
    project.mkdir(parents=True)
    machine = MACHINES[arch]
    pinned = folder / (f"requirements-{extra}.txt" if extra else "requirements.txt")
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
            *(["--extra", extra] if extra else []),
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


def build(
    docker: Engine, arch: str, base_tag: str, image: str = IMAGE, dockerfile: Path | None = None
) -> dict[str, object]:
    tag = f"{image}:{arch}"
    chosen = ["-f", str(dockerfile)] if dockerfile else []
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
            *chosen,
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
            *chosen,
            str(ROOT),
        ]
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        how = "legacy builder"
    log = ROOT / "build" / "image" / f"build-{image}-{arch}.log"
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


# --- the run -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", default="amd64,arm64", help="platforms to build and run (default %(default)s)")
    parser.add_argument("--no-compose", action="store_true", help="skip the compose stack")
    parser.add_argument("--no-suite", action="store_true", help="skip the suite's image")
    parser.add_argument(
        "--wheels-only", action="store_true", help="download the wheels the Dockerfiles install, then stop"
    )
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
    if args.wheels_only:  # make image-wheels: for a docker build by hand
        try:
            for arch in archs:
                for extra in ("", "suite"):
                    count, seconds = wheels(arch, extra)
                    say(f"{arch} {extra or 'gateway'} wheels: {count} in build/image/wheels/{arch} ({seconds:.0f} s)")
        except (Missing, Failed, subprocess.CalledProcessError) as failure:
            say(f"FAILED: {failure}")
            return 1
        return 0
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
            if not args.no_suite:
                suite_builds = {}
                for arch in archs:
                    count, seconds = wheels(arch, "suite")
                    say(f"{arch} suite wheels: {count} in build/image/wheels/{arch}/suite-deps ({seconds:.0f} s)")
                    dockerfile = ROOT / "deploy" / "suite.Dockerfile"
                    suite_builds[arch] = build(docker, arch, bases[arch]["tag"], SUITE_IMAGE, dockerfile)
                    say(
                        f"{arch} suite image built in {suite_builds[arch]['build_s']:.0f} s, "
                        f"{suite_builds[arch]['size_mb']} MB, metadata {suite_builds[arch]['architecture']}"
                    )
                    found = leaks(docker, f"{SUITE_IMAGE}:{arch}", {"a .env value": _env_values()})
                    if found:
                        raise Failed(f"the {arch} suite image holds what it must not: {found[:5]}")
                docker("tag", f"{SUITE_IMAGE}:{host_arch()}", f"{SUITE_IMAGE}:latest")
                report["suite_images"] = suite_builds
                report["suite_runs"] = suite_check(docker, archs)
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
