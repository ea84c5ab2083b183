"""Where workerprobe keeps files outside any project folder: state (the gateway's default
database, the suite's ledgers) and caches (the Node SDK's packages). Never the working directory."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "state_dir"]


def state_dir() -> Path:
    """`$WORKERPROBE_STATE_DIR`, else `$XDG_STATE_HOME/workerprobe`, else `~/.local/state/workerprobe`."""
    explicit = os.environ.get("WORKERPROBE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "workerprobe"


def cache_dir() -> Path:
    """`$WORKERPROBE_CACHE_DIR`, else `$XDG_CACHE_HOME/workerprobe`, else `~/.cache/workerprobe`."""
    explicit = os.environ.get("WORKERPROBE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workerprobe"
