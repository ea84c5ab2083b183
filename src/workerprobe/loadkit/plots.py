"""PNG plots of a load run: TTFT and TPOT distributions, latency against concurrency, and
truncation against max_tokens."""

from __future__ import annotations

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

    levels = collector.by_concurrency()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if levels:
        xs = [level["users"] for level in levels]
        ax.plot(xs, [1000 * level["e2e_p50_s"] for level in levels], marker="o", label="median")
        ax.plot(xs, [1000 * level["e2e_p95_s"] for level in levels], marker="o", label="p95")
        for level in levels:
            ax.annotate(
                f"n={level['n']}",
                (level["users"], 1000 * level["e2e_p95_s"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
            )
        ax.legend()
        rated = [level for level in levels if level["answers_per_s"] is not None]
        ax2.plot([r["users"] for r in rated], [r["answers_per_s"] for r in rated], marker="o", color="#4a7ab5")
        for r in rated:
            ax2.annotate(
                f"{r['seconds']:.0f} s",
                (r["users"], r["answers_per_s"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
            )
        for axis in (ax, ax2):
            axis.set_xticks(xs)
            axis.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.margins(y=0.15)
    ax.set_xlabel("running users (levels the run held)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("latency against concurrency")
    ax2.set_xlabel("running users")
    ax2.set_ylabel("answers per second")
    ax2.set_ylim(bottom=0)
    ax2.set_title("throughput against concurrency (time at each level)")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_vs_concurrency.png", dpi=100)
    plt.close(fig)
    written.append(out_dir / "latency_vs_concurrency.png")

    keys = sorted(collector.truncation, key=_limit_order)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if keys:
        labels = [k.split("|", 1)[1] for k in keys]
        length = [collector.truncation[k][1] / max(collector.truncation[k][0], 1) for k in keys]
        silent = [collector.truncation[k][2] / max(collector.truncation[k][0], 1) for k in keys]
        positions = range(len(keys))
        ax.bar(positions, length, label='finish_reason "length"', color="#4a7ab5")
        ax.bar(positions, silent, bottom=length, label="silent truncation", color="#c0504d")
        for i, key in enumerate(keys):
            total = length[i] + silent[i]
            if total == 0:  # a zero is a result: draw it
                ax.bar(i, 0.01, color="none", edgecolor="#666666", linestyle="--")
            ax.annotate(
                f"{total:.0%} of {collector.truncation[key][0]}",
                (i, total),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(list(positions), labels)
        ax.legend()
    ax.set_xlabel("max_tokens requested")
    ax.set_ylabel("share of answers")
    ax.set_ylim(0, 1.15)
    ax.set_title("truncation against max_tokens")
    fig.tight_layout()
    fig.savefig(out_dir / "truncation_vs_max_tokens.png", dpi=100)
    plt.close(fig)
    written.append(out_dir / "truncation_vs_max_tokens.png")
    return written


def _limit_order(key: str) -> tuple[str, float]:
    """model, then max_tokens as a number ("default", none asked, last)."""
    model, _, limit = key.partition("|")
    return model, float(limit) if limit.isdigit() else float("inf")
