"""The image, the ARM64 check and the micro-server compose file agree with each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _check_constants() -> dict[str, object]:
    tree = ast.parse((ROOT / "arm64" / "check.py").read_text())
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def test_the_image_and_the_arm64_check_share_distribution_and_python() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    check = _check_constants()
    assert bases and all(base == f"debian:{check['SUITE']}-slim" for base in bases), bases
    # Python from the distribution (not a python:* image with its own build), in both.
    assert "python3" in check["PACKAGES"]  # type: ignore[operator]
    assert re.search(r"apt-get install[^\n]*python3", dockerfile)
    # Binary wheels only, in both: what the check installed is what the image gets.
    assert "--only-binary=:all:" in dockerfile
    assert "--only-binary=:all:" in (ROOT / "arm64" / "check.py").read_text()


def test_compose_runs_gateway_redis_and_prometheus_scraping_metrics() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"gateway", "redis", "prometheus"} <= set(services)
    assert services["gateway"]["environment"]["WORKERPROBE_GATEWAY_REDIS_URL"].startswith("redis://redis:")
    mounted = next(v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v)
    config = yaml.safe_load((ROOT / mounted.split(":")[0]).read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["gateway:8787"]
