"""The image, the ARM64 check and the micro-server compose file agree with each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _constants(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text())
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
    check = _constants(ROOT / "deploy" / "arm64.py")
    image = {**_constants(ROOT / "deploy" / "engine.py"), **_constants(ROOT / "deploy" / "image.py")}
    (default,) = re.findall(r"^ARG BASE=(\S+)", dockerfile, flags=re.MULTILINE)
    assert default == image["UPSTREAM_BASE"] == f"debian:{check['SUITE']}-slim" and image["SUITE"] == check["SUITE"]
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert bases and all(base == "${BASE}" for base in bases), bases
    # Python from the distribution (not a python:* image with its own build), in both; the
    # image's wheels are resolved for bookworm's Python.
    assert "python3" in check["PACKAGES"]  # type: ignore[operator]
    assert re.search(r"apt-get install[^\n]*python3", dockerfile)
    assert str(image["PYTHON"]).startswith("3.11.")
    # Binary wheels only, in both, and the image's from the folder make image fills, no index.
    assert "--only-binary=:all:" in dockerfile and "--no-index" in dockerfile
    assert "COPY build/image/wheels/${TARGETARCH}/deps/" in dockerfile and "pip check" in dockerfile
    assert "--only-binary=:all:" in (ROOT / "deploy" / "arm64.py").read_text()


def test_the_build_context_is_the_wheels_only() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["*", "!build/image/wheels/"]


def test_the_local_service_images_build_on_the_gateways_base() -> None:
    local = yaml.safe_load((ROOT / "deploy" / "compose.local.yaml").read_text())["services"]
    for name in ("redis", "prometheus"):
        build = local[name]["build"]
        dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
        assert "FROM ${BASE}" in dockerfile and "apt-get install" in dockerfile
        assert build["args"]["BASE"].startswith("${WORKERPROBE_BASE")


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
