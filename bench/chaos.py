"""Chaos and attack runs against real gateway processes, loopback only, bounded in time:

    kill9-sqlite / kill9-redis  kill -9 of the gateway under 32 writers, restarted on the same store:
                                acknowledged messages lost (must be 0)
    redis-outage                Redis killed and restarted mid-run under writers: answers outside the
                                envelope or other than 200/503 (must be 0), recovery without a restart
    replicas-poller             two replicas on Redis, 32 writers on both, a poller paging `after` the
                                last id it saw through one of them: messages it missed (must be 0)
    sqlite-lock                 another process holds the write lock: /health p99 meanwhile, and the
                                writes' answers (503 in the envelope)
    slow-clients                1,100 half-sent requests without a key, the gateway at 1,024 open files:
                                /health answered (must be all)
    chunked-uploads             four parallel 100 MB chunked uploads: the gateway's peak RSS (< 150 MB)
    malformed-corpus            raw-socket requests over every endpoint (malformed JSON, wrong types,
                                nesting, huge numbers and bodies, unknown and foreign ids, bad auth):
                                answers outside the envelope, and 5xx (must be 0)
    slow-body-flood             1,100 connections with a valid key in their body phase, a byte a second,
                                10 ms apart, the gateway at 1,024 open files: /health failed (must be 0)
    hostile-upstream            the gateway in front of each hostile upstream (bench/chaos_hostile.py):
                                answers not 502/504 in the envelope (must be 0), RSS peak under 300 MB and
                                after within 20 MB of the start
    hostile-test, hostile-load  `workerprobe test` and `workerprobe load` against each hostile target:
                                each ends by its own bounds with exit 1 or 2, under 1 GB

    .venv/bin/python bench/chaos.py [--short] [--out reports/chaos.json]

Exit 1 when a must-be-0 figure is not 0, so CI can run the short form.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos_edge import chunked_uploads, malformed_corpus, slow_clients
from chaos_hostile import hostile_load, hostile_suite, hostile_upstream, slow_body_flood
from chaos_store import TOKEN, kill9, redis_outage, replicas_poller, sqlite_lock

from workerprobe.hostile import MODES
from workerprobe.procs import serve

ROOT = Path(__file__).resolve().parents[1]


def _unbounded(command: dict[str, Any]) -> bool:
    """A command against a hostile target that did not end by its own bounds, with exit 1 or 2, under 1 GB."""
    return command["exit"] not in (1, 2) or bool(command["guard"]) or command["rss_peak_mb"] >= 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI form: shorter runs, the same checks")
    parser.add_argument("--out", default=str(ROOT / "reports" / "chaos.json"))
    parser.add_argument("--only", nargs="*", help="run only these steps (default: all)")
    args = parser.parse_args()
    seconds = 3.0 if args.short else 8.0
    # The short form: a body past its size, a stream that never ends, a drip, one of each kind.
    modes = ["huge-body", "endless-stream", "drip"] if args.short else sorted(MODES)
    upstream_modes = modes if args.short else [m for m in modes if m != "endless-chat"]
    suite_modes = [*modes, "endless-chat"] if args.short else modes
    results: dict[str, Any] = {}
    with serve(["emulator"], env={"CF_API_TOKEN": TOKEN}) as emulator:
        folder = tempfile.mkdtemp(prefix="chaos-kill9-")
        steps = {
            "kill9-sqlite": lambda: kill9(emulator, {"database": f"{folder}/gateway.sqlite3"}, seconds),
            "kill9-redis": lambda: kill9(
                emulator,
                {"redis_url": "redis://127.0.0.1:6379/0", "redis_prefix": f"wp-chaos-{uuid.uuid4().hex}:"},
                seconds,
            ),
            "redis-outage": lambda: redis_outage(emulator, seconds * 1.5),
            "replicas-poller": lambda: replicas_poller(emulator, seconds),
            "sqlite-lock": lambda: sqlite_lock(emulator),
            "slow-clients": lambda: slow_clients(emulator, 1100),
            "chunked-uploads": lambda: chunked_uploads(emulator, 25 if args.short else 100),
            "malformed-corpus": lambda: malformed_corpus(emulator, 720),
            "slow-body-flood": lambda: slow_body_flood(ROOT, emulator.url, Path(folder)),
            "hostile-upstream": lambda: {"modes": [hostile_upstream(ROOT, m, Path(folder)) for m in upstream_modes]},
            # the short form adds a target whose model list answers (the run goes past its pre-flight)
            # and every other answer never ends: what the scenarios' SDK clients read is bounded too
            "hostile-test": lambda: {
                "modes": [hostile_suite(ROOT, m, 60.0 if args.short else 120.0) for m in suite_modes]
            },
            "hostile-load": lambda: {"modes": [hostile_load(ROOT, m, 4.0 if args.short else 10.0) for m in modes]},
        }
        for name, step in steps.items():
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            results[name] = {**step(), "seconds": round(time.monotonic() - started, 1)}
            print(f"{name:<18} {json.dumps(results[name])}", flush=True)
    failures = []
    verdicts: dict[str, Callable[[dict[str, Any]], bool]] = {  # True: the step failed its must-be-0
        "kill9-sqlite": lambda r: r["lost"] > 0,
        "kill9-redis": lambda r: r["lost"] > 0,
        "redis-outage": lambda r: bool(
            r["outside_the_envelope_or_unexpected"] or r["acknowledged_lost"] or r["recovered_s_after_restart"] is None
        ),
        "replicas-poller": lambda r: r["missed"] > 0,
        "sqlite-lock": lambda r: bool(
            r["health_unanswered_within_1s"] or any(w not in ("200", "503") for w in r["writes"])
        ),
        "slow-clients": lambda r: r["unanswered"] > 0,
        "chunked-uploads": lambda r: r["rss_peak_mb"] >= 150,
        "malformed-corpus": lambda r: bool(
            r["outside_the_envelope"] or r["server_errors"] or not r["stored_objects_intact"]
        ),
        "slow-body-flood": lambda r: r["health_failed"] > 0,
        "hostile-upstream": lambda r: any(
            m["not_in_the_envelope"]
            or set(m["statuses"]) - {"200", "502", "504"}
            or m["rss_peak_mb"] >= 300
            or m["rss_after_mb"] - m["rss_start_mb"] > 20
            or m["health_after"] != 200
            for m in r["modes"]
        ),
        "hostile-test": lambda r: any(
            m["exit"] not in (1, 2) or m["guard"] or m["rss_peak_mb"] >= 1000 for m in r["modes"]
        ),
        "hostile-load": lambda r: any(
            m["exit"] not in (1, 2) or m["guard"] or m["rss_peak_mb"] >= 1000 for m in r["modes"]
        ),
    }
    checks = {name: verdicts[name](result) for name, result in results.items()}
    failures = [name for name, bad in checks.items() if bad]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results, "failed": failures}, indent=2))
    print(f"\n{'FAILED: ' + ', '.join(failures) if failures else 'every must-be-0 figure is 0'}; {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
