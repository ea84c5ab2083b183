"""`make arm64-check`: the reference gateway on an aarch64 CPU, under emulation, without Docker.

1. A Debian bookworm arm64 root filesystem, built once with debootstrap and qemu-user-static
   (binfmt_misc registered for aarch64) into `.cache/arm64/` and reused after.
2. The project installed inside it from a wheel built here, its dependencies as aarch64 wheels
   from PyPI (`--only-binary=:all:`: nothing is compiled, so what installs is what an arm64
   image would get).
3. The gateway started inside it on a loopback port, its upstream the emulator running natively;
   the SDK scenario tests run from the host against it.
4. The machine the gateway reports (`/health` must say aarch64) and its throughput emulated
   beside the same gateway run natively.

It needs root (debootstrap, chroot, mounts) and binfmt_misc. Where those are missing it says
what is missing and exits 2; it never reports a check it did not make.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from workerprobe.catalogue import load as load_catalogue
from workerprobe.loadkit.loadgen import throughput
from workerprobe.procs import free_port, gateway_env, serve, stop, wait_listening
from workerprobe.suite.cases import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent

# The Dockerfile's base is the same distribution and Python (tests/unit/test_arm64_check.py).
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
CACHE = Path(os.environ.get("WORKERPROBE_ARM64_CACHE", ROOT / ".cache" / "arm64"))
RootFS = CACHE / f"{SUITE}-arm64"
VENV = "/opt/workerprobe"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
HOST_PACKAGES = {"debootstrap": "debootstrap", "qemu-aarch64-static": "qemu-user-static"}
CLEAN_ENV = {"PATH": f"{VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
CA_IN_ROOTFS = "/etc/ssl/certs/host-ca-certificates.crt"


class Missing(Exception):
    """Something the check needs that this machine does not have."""


def say(message: str) -> None:
    print(f"arm64-check: {message}", flush=True)


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


# --- the host: root, tools, binfmt_misc ----------------------------------------------------------


def prepare_host(install: bool) -> None:
    if os.geteuid() != 0:
        raise Missing("root is needed (debootstrap, chroot and mounts); run `sudo make arm64-check`")
    missing = [package for tool, package in HOST_PACKAGES.items() if shutil.which(tool) is None]
    if missing:
        if not install or shutil.which("apt-get") is None:
            raise Missing(f"install the Debian packages {' '.join(missing)} (apt-get install {' '.join(missing)})")
        say(f"installing {' '.join(missing)} from Debian")
        run(["apt-get", "install", "-y", "-q", *missing], stdout=subprocess.DEVNULL)
    if not (BINFMT / "register").exists():
        say("mounting binfmt_misc")
        done = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise Missing(f"binfmt_misc is not mounted and cannot be ({done.stderr.strip()}); the kernel needs it")
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        if not QEMU_CONF.exists():
            raise Missing(f"no aarch64 handler to register ({QEMU_CONF} is missing: install qemu-user-static)")
        say("registering the aarch64 handler with binfmt_misc")
        try:
            (BINFMT / "register").write_text(QEMU_CONF.read_text().strip())
        except OSError as error:
            raise Missing(f"cannot register aarch64 with binfmt_misc: {error}") from error
    state = entry.read_text()
    if not state.startswith("enabled"):
        raise Missing("the aarch64 binfmt_misc handler is registered but disabled (echo 1 > .../qemu-aarch64)")
    if "F" not in state.split("flags:", 1)[1].split()[0]:
        raise Missing(
            "the aarch64 handler lacks the F flag, so it cannot run inside a chroot (reinstall qemu-user-static)"
        )


# --- the root filesystem ---------------------------------------------------------------------------


def build_rootfs() -> float:
    """Build the root filesystem unless a finished one is cached; the seconds it took (0 if cached)."""
    if (RootFS / ".complete").exists():
        return 0.0
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    partial = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE))
    say(f"building a {SUITE} arm64 root filesystem (several minutes, once) in {partial}")
    try:
        run(
            [
                "debootstrap",
                "--arch=arm64",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(partial),
                MIRROR,
            ],
            stdout=subprocess.DEVNULL,
        )
    except BaseException as failure:  # any failure, an interrupt too: nothing half-built stays behind
        log = partial / "debootstrap" / "debootstrap.log"
        if isinstance(failure, subprocess.CalledProcessError) and log.exists():
            print(log.read_text()[-4000:], file=sys.stderr)
        # debootstrap mounts these inside the tree it builds; a failure can leave them mounted.
        for point in ("proc", "sys", "dev/pts", "dev"):
            if os.path.ismount(partial / point):
                subprocess.run(["umount", "-l", str(partial / point)], check=False)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (partial / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if RootFS.exists():
        shutil.rmtree(RootFS)
    partial.rename(RootFS)
    return time.monotonic() - started


@contextmanager
def mounted() -> Iterator[None]:
    """/proc and /dev inside the root filesystem, the host's DNS and CA certificates copied in."""
    shutil.copyfile("/etc/resolv.conf", RootFS / "etc" / "resolv.conf")
    host_ca = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    if host_ca.exists():  # pip then works behind a TLS-inspecting proxy as the host's pip does
        shutil.copyfile(host_ca, RootFS / CA_IN_ROOTFS.lstrip("/"))
    mounts = [
        (["mount", "-t", "proc", "proc", str(RootFS / "proc")], RootFS / "proc"),
        (["mount", "--bind", "/dev", str(RootFS / "dev")], RootFS / "dev"),
    ]
    done: list[Path] = []
    try:
        for command, point in mounts:
            run(command)
            done.append(point)
        yield
    finally:
        for point in reversed(done):
            subprocess.run(["umount", "-l", str(point)], check=False)


def in_rootfs(command: list[str], env: dict[str, str] | None = None) -> list[str]:
    """A command run inside the root filesystem with a clean environment (`env -i`)."""
    variables = {**CLEAN_ENV, **(env or {})}
    if (RootFS / CA_IN_ROOTFS.lstrip("/")).exists():
        variables |= {"PIP_CERT": CA_IN_ROOTFS, "SSL_CERT_FILE": CA_IN_ROOTFS}
    return ["chroot", str(RootFS), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items()), *command]


# --- the project inside it -------------------------------------------------------------------------


def install_project() -> tuple[float, str]:
    """Install this checkout in the root filesystem's venv: (seconds, what happened)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, str(ROOT)],
            stdout=subprocess.DEVNULL,
        )
        (wheel,) = Path(out).glob("*.whl")
        inbox = RootFS / "tmp" / "workerprobe-wheel"
        shutil.rmtree(inbox, ignore_errors=True)
        inbox.mkdir(parents=True)
        shutil.copy(wheel, inbox)
    target = f"/tmp/workerprobe-wheel/{wheel.name}"
    # Dependencies are installed again only when the project's requirements change.
    requirements = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = RootFS / VENV.lstrip("/") / ".requirements"
    if not (RootFS / VENV.lstrip("/") / "bin" / "python").exists():
        run(in_rootfs(["python3", "-m", "venv", VENV]))
        run(in_rootfs(["python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"]))
    if stamp.exists() and stamp.read_text() == requirements:
        run(in_rootfs(["python", "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", target]))
        what = "project reinstalled, aarch64 dependencies cached"
    else:
        say("installing the project's dependencies as aarch64 wheels from PyPI")
        run(in_rootfs(["python", "-m", "pip", "install", "--quiet", "--only-binary=:all:", target]))
        stamp.write_text(requirements)
        what = "project and aarch64 dependencies installed"
    # The compiled dependencies: each must be an aarch64 extension module from a wheel.
    compiled = ("pydantic_core", "orjson", "uvloop", "httptools", "aiohttp", "yarl", "multidict")
    found = run(
        in_rootfs(
            [
                "python",
                "-c",
                (
                    "import importlib.util, pathlib\n"
                    f"for name in {compiled!r}:\n"
                    "    spec = importlib.util.find_spec(name)\n"
                    "    where = pathlib.Path(spec.origin).parent\n"
                    "    sos = sorted(p.name for p in where.rglob('*.so'))\n"
                    "    print(name, sos[0] if sos else 'no extension module')\n"
                ),
            ]
        ),
        capture_output=True,
    ).stdout
    for line in found.splitlines():
        name, module = line.split(" ", 1)
        if "aarch64" not in module:
            raise RuntimeError(f"{name} is not an aarch64 extension module: {module}")
        say(f"  {name}: {module}")
    return time.monotonic() - started, what


# --- the checks ------------------------------------------------------------------------------------


def health(url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        data: dict[str, str] = json.loads(response.read())
    return data


def _env(emulator_url: str, key: str, token: str, database: str) -> dict[str, str]:
    return gateway_env(
        emulator_url, api_key=key, token=token, database=database, account="workerprobe-arm64", redis_url=""
    )


@contextmanager
def emulated_gateway(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    command = in_rootfs([f"{VENV}/bin/workerprobe", "gateway", "--host", "127.0.0.1", "--port", str(port)], env)
    process = subprocess.Popen(command, start_new_session=True)
    try:
        wait_listening("127.0.0.1", port, timeout=180, process=process)  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, timeout=15)  # type: ignore[arg-type]


def rps(url: str, key: str, seconds: float, concurrency: int) -> float:
    body = json.dumps(
        {
            "model": load_catalogue().default("text-generation").name,
            "messages": [{"role": "user", "content": "What is 3 * 10?"}],
            "max_tokens": 16,
        }
    ).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = throughput(f"{url}/v1/chat/completions", body, headers, seconds, concurrency, warmup=3.0)
    if result.errors:
        raise RuntimeError(f"{result.errors} requests failed during the throughput run against {url}")
    return result.rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing host tools")
    parser.add_argument("--rebuild", action="store_true", help="build the root filesystem again")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        prepare_host(install=not args.no_install)
    except Missing as missing:
        say(f"NOT RUN: {missing}")
        return 2
    if args.rebuild:
        shutil.rmtree(RootFS, ignore_errors=True)
    build_s = build_rootfs()
    say(f"root filesystem {RootFS}: " + (f"built in {build_s:.0f} s" if build_s else "cached"))
    figures: dict[str, object] = {"rootfs_build_s": round(build_s, 1)}
    key, token = "sk-arm64-check", "arm64-check-token"
    with ExitStack() as stack:
        stack.enter_context(mounted())
        machine = run(in_rootfs(["uname", "-m"]), capture_output=True).stdout.strip()
        if machine != "aarch64":
            say(f"FAILED: the root filesystem runs as {machine!r}, not aarch64")
            return 1
        install_s, what = install_project()
        say(f"{what} in {install_s:.0f} s")
        figures["install_s"] = round(install_s, 1)
        emulator = stack.enter_context(serve(["emulator"], env={"CF_API_TOKEN": token}))
        emulated = stack.enter_context(emulated_gateway(_env(emulator.url, key, token, "/tmp/arm64.sqlite3")))
        seen = health(emulated)
        say(f"the gateway in the root filesystem reports machine={seen['machine']} python={seen['python']}")
        if seen["machine"] != "aarch64":
            say("FAILED: the gateway does not run on aarch64")
            return 1
        figures |= {"machine": seen["machine"], "python": seen["python"]}
        scenario_started = time.monotonic()
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", str(SCENARIOS), "-q", "-p", "no:cacheprovider", "--max-neurons", "1e9"],
            cwd=ROOT,
            env={
                **os.environ,
                "CLOUDFLARE_WORKER_URL": f"{emulated}/v1",  # the base URL an SDK is given
                "API_KEY": key,
                "WORKERPROBE_TARGET": "",
                "WORKERPROBE_TARGET_UPSTREAM": "emulator",  # so the emulator-only scenarios run too
            },
        )
        figures["scenarios_s"] = round(time.monotonic() - scenario_started, 1)
        if tests.returncode != 0:
            say("FAILED: the SDK scenario tests failed against the gateway on aarch64")
            return 1
        emulated_rps = rps(emulated, key, args.seconds, args.concurrency)
        with serve(["gateway"], env=_env(emulator.url, key, token, str(CACHE / "native.sqlite3"))) as native_server:
            native_rps = rps(native_server.url, key, args.seconds, args.concurrency)
    figures |= {
        "rps_emulated": round(emulated_rps, 1),
        "rps_native": round(native_rps, 1),
        "native_machine": platform.machine(),
        "check_s": round(time.monotonic() - started, 1),
    }
    say(
        f"throughput, chat completions at c={args.concurrency}: aarch64 emulated {emulated_rps:.0f} req/s,"
        f" {platform.machine()} native {native_rps:.0f} req/s (native/emulated {native_rps / emulated_rps:.1f}x)"
    )
    out = ROOT / "reports" / "arm64.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    say(f"PASSED in {figures['check_s']:.0f} s: scenario tests green against the gateway on aarch64 ({out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
