"""The report pages a person opens, rendered in headless Chromium: the load run's page (its
figures, its plots loaded), Locust's report beside it, and the suite's Allure report, all served
by `workerprobe report` on 127.0.0.1, and the Allure report opened as a file, as a CI artifact is
opened (one self-contained page), with a failed MUST test under its category."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "reports" / "screenshots"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make install installs Debian's chromium as root)"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    reports = tmp_path_factory.mktemp("reports")
    load = [sys.executable, str(ROOT / "load" / "run.py"), "--embedded", "--allow-busy-generator"]
    load += ["--out", str(reports / "load"), "--classes", "StreamUser", "ChatUser", "--profile", "step"]
    load += ["--users", "4", "--step", "2", "--step-seconds", "3", "--seconds", "6", "--ttft-ms", "100"]
    subprocess.run(load, check=True, capture_output=True, timeout=180, cwd=ROOT)
    # a real suite run's Allure results (a small one: the catalogue's unit tests)
    results = reports / "allure-results"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_catalogue.py",
         f"--alluredir={results}"],
        check=True, capture_output=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "workerprobe", "report", "--dir", str(reports), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        base = None
        for line in server.stdout:
            found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if found:
                base = found.group(1)
            if line.startswith("serving on"):
                break
        assert base is not None, "workerprobe report printed no address"
        yield base, reports
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _open(browser: object, url: str, shot: str) -> object:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.ok, url
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / shot), full_page=True)
    return page


def test_the_load_runs_page_shows_its_figures_and_plots(served: tuple[str, Path], browser: object) -> None:
    base, _ = served
    page = _open(browser, f"{base}/load/index.html", "load-index.png")
    assert page.title().startswith("workerprobe load: the embedded default")  # type: ignore[attr-defined]
    figures = page.inner_text("#figures")  # type: ignore[attr-defined]
    assert "TTFT" in figures and "ms" in figures and "not measured" not in figures.split("TTFB")[0]
    images = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
    )
    assert sorted(src for src, _ in images) == sorted(
        ["ttft.png", "tpot.png", "latency_vs_concurrency.png", "truncation_vs_max_tokens.png"]
    )
    assert all(loaded for _, loaded in images), images
    locust = _open(browser, f"{base}/load/locust.html", "load-locust.png")
    assert "Locust" in locust.title()  # type: ignore[attr-defined]


def test_the_allure_report_renders_the_suites_tests(served: tuple[str, Path], browser: object) -> None:
    base, reports = served
    if not (reports / "allure-report" / "index.html").exists():
        pytest.skip("the Allure report was not built (npx could not fetch allure from npm)")
    page = _open(browser, f"{base}/allure-report/index.html", "allure.png")
    ran = len(list((reports / "allure-results").glob("*-result.json")))
    page.wait_for_function("() => document.body.innerText.includes('Passed')", timeout=30_000)  # type: ignore[attr-defined]
    text = page.inner_text("body")  # type: ignore[attr-defined]
    assert ran > 0 and re.search(rf"Total\s+{ran}\b", text) and re.search(rf"Passed\s+{ran}\b", text), text[:500]


def test_the_allure_report_opens_from_a_file_with_the_must_category(browser: object, tmp_path: Path) -> None:
    """A real run against a gateway whose chat choices lack `index`, its Allure report built by
    `workerprobe report --no-serve` and opened from file://: the failed test is under the MUST
    category, with the finding's curl among its attachments."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLOUDFLARE_WORKER_URL", "API_KEY")}
    env |= {"WORKERPROBE_TARGET": "embedded", "WORKERPROBE_SELFTEST_DEFECTS": '["choices_without_index"]'}
    run = [sys.executable, "-m", "workerprobe", "test", "--processes", "1", "--", "-k", "test_examples and chat"]
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1, done.stdout[-2000:]
    subprocess.run(
        [sys.executable, "-m", "workerprobe", "report", "--no-serve"], cwd=tmp_path, check=False, timeout=600
    )
    built = tmp_path / "reports" / "latest" / "allure-report" / "index.html"
    if not built.exists():
        pytest.skip("the Allure report was not built (npx could not fetch allure from npm)")
    assert [p.name for p in built.parent.iterdir() if p.suffix in (".js", ".css")] == []  # one file, data inside
    page = browser.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    page.goto(built.as_uri())
    page.wait_for_function("() => document.body.innerText.includes('Failed')", timeout=30_000)
    page.click("text=Categories")
    page.wait_for_function(
        "() => document.body.innerText.includes('MUST: an official OpenAI client breaks')", timeout=30_000
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "allure-from-file.png"), full_page=True)
    page.click("text=POST /v1/chat/completions (examples)")
    page.wait_for_function("() => document.body.innerText.includes(': curl')", timeout=30_000)
    page.close()
