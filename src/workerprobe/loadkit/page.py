"""One HTML page per load run (reports/load/index.html): the LLM figures of summary.json, the
plots, and a link to Locust's own report beside it. Plain HTML, no script: it opens from the
file system or any static server."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["PLOTS", "write_page"]

PLOTS = ("ttft.png", "tpot.png", "latency_vs_concurrency.png", "truncation_vs_max_tokens.png")
_FIGURES = (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("ITL", "itl_s"), ("end to end", "e2e_s"), ("TTFB", "ttfb_s"))


def _ms(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{1000 * value:.{digits}f} ms"


def _level(level: dict[str, Any]) -> str:
    rate = level["answers_per_s"]
    shown = "n/a" if rate is None else f"{rate:.2f}"
    return (
        f"<tr><td>{level['users']}</td><td>{level['n']}</td><td>{_ms(level['e2e_p50_s'])}</td>"
        f"<td>{_ms(level['e2e_p95_s'])}</td><td>{shown}</td></tr>"
    )


def write_page(summary: dict[str, Any], out_dir: Path) -> Path:
    esc = html.escape
    title = f"workerprobe load: {summary.get('target', '')}, profile {summary.get('profile', '')}"
    rows = []
    for name, key in _FIGURES:
        f = summary.get(key)
        if f:
            rows.append(
                f"<tr><th>{name}</th><td>{_ms(f['p50'])}</td><td>{_ms(f['p95'])}</td><td>{_ms(f['p99'])}</td>"
                f"<td>{f['n']}</td></tr>"
            )
        else:
            rows.append(f"<tr><th>{name}</th><td colspan=4>not measured</td></tr>")
    own = summary.get("gateway_overhead_s")
    if own:
        rows.append(
            f"<tr><th>gateway's own time</th><td>{_ms(own['p50'], 3)}</td><td>{_ms(own['p95'], 3)}</td>"
            f"<td>{_ms(own['p99'], 3)}</td><td>{own['n']}</td></tr>"
        )
    rate = summary.get("throughput") or {}
    causes = summary.get("causes") or {}
    failed = "".join(f"<tr><th>{esc(c)}</th><td>{n}</td></tr>" for c, n in causes.items())
    levels = "".join(_level(lv) for lv in summary.get("by_concurrency") or [])
    generator = summary.get("generator") or {}
    images = "".join(
        f'<figure><img src="{p}" alt="{esc(p)}"><figcaption>{esc(p)}</figcaption></figure>'
        for p in PLOTS
        if (out_dir / p).exists()
    )
    breached = summary.get("thresholds_breached") or []
    verdict = (
        "<p class=bad>thresholds broken: " + esc("; ".join(breached)) + "</p>"
        if breached
        else "<p class=good>every threshold held</p>"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.75em; text-align: right; }}
th {{ text-align: left; background: #f4f4f4; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
.bad {{ color: #a00; font-weight: bold; }} .good {{ color: #070; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{esc(str(summary.get("started_at", "")))} to {esc(str(summary.get("ended_at", "")))}, workerprobe
{esc(str(summary.get("version", "")))}, {summary.get("requests", 0)} LLM requests,
error rate {summary.get("error_rate", 0):.3f}, truncation rate {summary.get("truncation_rate", 0):.3f},
~{summary.get("neurons", 0):.2f} neurons. <a href="locust.html">Locust's own report</a> ·
<a href="summary.json">summary.json</a></p>
{verdict}
<h2>Latency</h2>
<table id="figures"><tr><th></th><th>p50</th><th>p95</th><th>p99</th><th>n</th></tr>{"".join(rows)}</table>
<h2>Throughput</h2>
<p id="throughput">{rate.get("requests_per_s", 0):.2f} requests/s, {rate.get("output_tokens_per_s", 0):.0f}
output tokens/s</p>
<table><tr><th>users</th><th>answers</th><th>e2e p50</th><th>e2e p95</th><th>answers/s</th></tr>{levels}</table>
<h2>Failures by cause</h2>
<table id="causes">{failed}</table>
<h2>Load generator</h2>
<p>CPU {generator.get("cpu_s", 0):.1f} s ({generator.get("cpu_share", 0):.0%} of
{generator.get("processes", 1)} process(es)); {esc(generator.get("bottleneck") or "it kept up")}</p>
<h2>Plots</h2>
{images}
</body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path
