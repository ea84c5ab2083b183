"""Starting the project's servers as real processes on free loopback ports (tests, benchmarks,
load runs), and stopping them again."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "Server",
    "free_port",
    "gateway_env",
    "gateway_over_emulator",
    "redis_server",
    "serve",
    "stop",
    "wait_listening",
]


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies, so a server
    started here never outlives whoever started it (uvicorn re-raises SIGTERM after its own
    shutdown, which ends the parent before any cleanup code of ours runs)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def wait_listening(host: str, port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on host:port (or `process` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on {host}:{port} within {timeout} s")


@contextmanager
def serve(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    cpu: int | None = None,
    timeout: float = 20.0,
    module: str = "workerprobe",
) -> Iterator[Server]:
    """Run `python -m <module> <command> --host H --port P` until the block ends (`module`: the
    workerprobe command line, or another module that serves an app the same way).

    `env` is added to (and overrides) this process's environment; `cpu` pins the server to one
    core (benchmarks).
    """
    port = port or free_port(host)
    argv = [sys.executable, "-m", module, *command, "--host", host, "--port", str(port)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    full_env = {**os.environ, **(env or {})}
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks on it
    process = subprocess.Popen(
        argv,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    try:
        try:
            wait_listening(host, port, timeout, process)
        except (RuntimeError, TimeoutError) as exc:
            log.seek(0)
            raise RuntimeError(f"{' '.join(command)}: {exc}\n{log.read().decode(errors='replace')}") from None
        yield Server(host, port, process)
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a server, and kill it if it has not exited within `timeout`."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def gateway_env(
    upstream: str,
    *,
    api_key: str,
    token: str,
    database: str = ":memory:",
    account: str = "workerprobe",
    **settings: str,
) -> dict[str, str]:
    """The environment of a gateway whose upstream (an emulator) is at `upstream` (its root URL):
    clients use `api_key`, the upstream takes `token`; `settings` are further gateway settings by
    field name (`retry_attempts="3"` is WORKERPROBE_GATEWAY_RETRY_ATTEMPTS)."""
    env = {
        "API_KEY": api_key,
        "CF_API_BASE_URL": f"{upstream}/client/v4",
        "CF_ACCOUNT_ID": account,
        "CF_API_TOKEN": token,
        "WORKERPROBE_GATEWAY_DATABASE": database,
    }
    env.update({f"WORKERPROBE_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def gateway_over_emulator(
    *,
    api_key: str,
    token: str,
    account: str = "workerprobe",
    emulator_env: Mapping[str, str] | None = None,
    cpu: int | None = None,
    gateway: tuple[Sequence[str], str] = (("gateway",), "workerprobe"),
    **settings: str,
) -> Iterator[tuple[Server, Server]]:
    """An emulator, then a gateway whose upstream it is: `(gateway, emulator)` until the block ends.
    `gateway` is the command and module that serve it (a test double's module, for the selftest);
    `settings` as in `gateway_env`."""
    with serve(["emulator"], env={"CF_API_TOKEN": token, **(emulator_env or {})}, cpu=cpu) as emulator:
        env = gateway_env(emulator.url, api_key=api_key, token=token, account=account, **settings)
        command, module = gateway
        with serve(command, env=env, cpu=cpu, module=module) as served:
            yield served, emulator


@contextmanager
def redis_server(port: int | None = None, *, appendonly: bool = False, folder: str | None = None) -> Iterator[Server]:
    """A Redis server of its own on a free loopback port (tests and the chaos bench kill it):
    `redis-server` from the machine (Debian's redis-server package)."""
    port = port or free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
    if folder:
        argv += ["--dir", folder]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    try:
        wait_listening("127.0.0.1", port, 10, process)
        yield Server("127.0.0.1", port, process)
    finally:
        stop(process)
