"""Every SDK client the suite makes reads through its bounded transport: an OpenAI client built
without `http_client` reads whatever a target sends (one did: 20 GB from an endless answer)."""

from __future__ import annotations

import ast
from pathlib import Path

import workerprobe.suite

SUITE = Path(workerprobe.suite.__file__).parent


def _clients() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(SUITE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("OpenAI", "AsyncOpenAI"):
                    found.append((f"{path.relative_to(SUITE)}:{node.lineno}", node))
    return found


def test_every_sdk_client_of_the_suite_is_bounded() -> None:
    clients = _clients()
    assert clients, "the suite makes SDK clients: the scan found none"
    unbounded = [where for where, call in clients if not any(k.arg in ("http_client", None) for k in call.keywords)]
    assert not unbounded, f"SDK clients without the bounded http_client: {unbounded}"
