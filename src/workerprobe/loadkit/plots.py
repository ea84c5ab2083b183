"""PNG plots of a load run: TTFT and TPOT distributions, latency against concurrency, and
truncation against max_tokens."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from workerprobe.loadkit.summary import Collector

__all__ = ["plot_all"]


def plot_all(collector: Collector, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, values, label in (
        ("ttft.png", collector.ttft, "time to first token (ms)"),
        ("tpot.png", collector.tpot, "time per output token (ms)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist([v * 1000 for v in values], bins=40, color="#4a7ab5")
        ax.set_xlabel(label)
        ax.set_ylabel("requests")
        ax.set_title(f"{label}, n={len(values)}")
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)

    by_users: dict[int, list[float]] = defaultdict(list)
    for users, e2e in collector.by_users:
        by_users[users].append(e2e)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    levels = sorted(by_users)
    if levels:
        import numpy as np

        ax.plot(levels, [np.median(by_users[u]) * 1000 for u in levels], marker="o", label="median")
        ax.plot(levels, [np.percentile(by_users[u], 95) * 1000 for u in levels], marker="o", label="p95")
        ax.legend()
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("latency against concurrency")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_vs_concurrency.png", dpi=100)
    plt.close(fig)
    written.append(out_dir / "latency_vs_concurrency.png")

    keys = sorted(collector.truncation)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if keys:
        labels = [k.split("|", 1)[1] for k in keys]
        length = [collector.truncation[k][1] / max(collector.truncation[k][0], 1) for k in keys]
        silent = [collector.truncation[k][2] / max(collector.truncation[k][0], 1) for k in keys]
        ax.bar(labels, length, label='finish_reason "length"', color="#4a7ab5")
        ax.bar(labels, silent, bottom=length, label="silent truncation", color="#c0504d")
        ax.legend()
    ax.set_xlabel("max_tokens requested")
    ax.set_ylabel("share of answers")
    ax.set_ylim(0, 1)
    ax.set_title("truncation against max_tokens")
    fig.tight_layout()
    fig.savefig(out_dir / "truncation_vs_max_tokens.png", dpi=100)
    plt.close(fig)
    written.append(out_dir / "truncation_vs_max_tokens.png")
    return written
