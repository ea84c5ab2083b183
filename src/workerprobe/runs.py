"""Run folders: every run of `workerprobe test` and `workerprobe load` writes its reports to a
folder of its own, `<root>/<run id>/`, and `<root>/latest` points at the newest."""

from __future__ import annotations

import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["KEEP_RUNS", "latest", "new_run_id", "open_run_folder"]

KEEP_RUNS = 20  # run folders kept in a root (WORKERPROBE_KEEP_RUNS); the oldest go first


def new_run_id() -> str:
    """`wp-<UTC time>-<6 hex>`: sorts by start time, never the same twice."""
    return f"wp-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def open_run_folder(root: Path, run_id: str) -> Path:
    """Make `<root>/<run id>/`, point `<root>/latest` at it, and remove the oldest run folders past
    the newest KEEP_RUNS. Where no symbolic link can be made (Windows without the right),
    `<root>/latest` is a text file naming the run's folder."""
    folder = root / run_id
    folder.mkdir(parents=True, exist_ok=True)
    link, fresh = root / "latest", root / f".latest-{run_id}"
    try:
        fresh.unlink(missing_ok=True)
        os.symlink(run_id, fresh, target_is_directory=True)
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)  # a folder in the way
        os.replace(fresh, link)
    except OSError:
        fresh.unlink(missing_ok=True)
        if not link.is_dir() or link.is_symlink():
            link.unlink(missing_ok=True)
            link.write_text(run_id + "\n")
    keep = max(int(os.environ.get("WORKERPROBE_KEEP_RUNS", KEEP_RUNS)), 1)
    runs = sorted(p for p in root.glob("wp-*") if p.is_dir() and not p.is_symlink())
    for old in runs[: max(0, len(runs) - keep)]:
        if old.name != run_id:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def latest(root: Path, holding: str | None = None) -> Path | None:
    """The newest run folder of `root` (that holds `holding`, when given), or None. `root` may be
    a run folder itself (or any folder of reports): then it is its own newest."""
    if holding is None and (root / "latest").exists():
        pointed = root / "latest"
        if pointed.is_file():
            pointed = root / pointed.read_text().strip()
        return pointed.resolve() if pointed.is_dir() else None
    runs = sorted((p for p in root.glob("wp-*") if p.is_dir()), reverse=True)
    for run in runs:
        if holding is None or (run / holding).exists():
            return run
    if holding is not None and (root / holding).exists():
        return root
    return None
