"""What a page of a long list costs by its depth: a thread of N messages (default 10,000) in the
gateway on each store (SQLite and Redis), walked page by page with `after` (limit 20, newest
first, as the SDK's auto-pagination walks it), each page timed on the gateway's own clock of the
answer (`x-workerprobe-overhead-ms`: its time less the upstream's, which is none here) and on the
client's. The first pages beside the last ones: a cursor that scans costs more with depth, an
index does not.

    .venv/bin/python bench/pagination.py [--messages 10000] [--stores sqlite redis]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from workerprobe.procs import gateway_over_emulator, redis_server

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "bench" / "pagination.json"


@contextmanager
def gateway(store: str, folder: Path) -> Iterator[str]:
    key, token = f"sk-page-{secrets.token_hex(6)}", secrets.token_hex(8)
    with ExitStack() as stack:
        settings = {"database": str(folder / "pages.sqlite3")}
        if store == "redis":
            redis = stack.enter_context(redis_server())
            settings = {"redis_url": f"redis://127.0.0.1:{redis.port}/0"}
        served, _ = stack.enter_context(gateway_over_emulator(api_key=key, token=token, **settings))
        yield f"{served.url}/v1|{key}"


def fill(http: httpx.Client, messages: int) -> str:
    thread = http.post("/threads", json={}).json()["id"]
    for i in range(messages):
        http.post(f"/threads/{thread}/messages", json={"role": "user", "content": f"message {i}"}).raise_for_status()
    return thread


def walk(http: httpx.Client, thread: str, order: str) -> list[tuple[float, float]]:
    """(gateway ms, client ms) of each page, first to last, in `order` (asc or desc)."""
    pages: list[tuple[float, float]] = []
    after: str | None = None
    while True:
        params = {"limit": 20, "order": order, **({"after": after} if after else {})}
        started = time.perf_counter()
        answer = http.get(f"/threads/{thread}/messages", params=params)
        client_ms = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        page = answer.json()
        pages.append((float(answer.headers["x-workerprobe-overhead-ms"]), client_ms))
        if not page["has_more"]:
            return pages
        after = page["data"][-1]["id"]


def _row(walks: list[list[tuple[float, float]]], filled_s: float) -> dict[str, object]:
    pages = len(walks[0])
    per_page = [statistics.median(w[i][0] for w in walks) for i in range(pages)]
    client = [statistics.median(w[i][1] for w in walks) for i in range(pages)]
    tenth = max(pages // 10, 1)
    first, last = per_page[:tenth], per_page[-tenth:]
    return {
        "pages": pages,
        "fill_s": round(filled_s, 1),
        "first_tenth_gateway_ms_median": round(statistics.median(first), 3),
        "last_tenth_gateway_ms_median": round(statistics.median(last), 3),
        "last_over_first": round(statistics.median(last) / statistics.median(first), 2),
        "first_tenth_client_ms_median": round(statistics.median(client[:tenth]), 3),
        "last_tenth_client_ms_median": round(statistics.median(client[-tenth:]), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    parser.add_argument("--walks", type=int, default=3, help="walks of the whole list (the median page is kept)")
    args = parser.parse_args(argv)
    results: dict[str, object] = {"messages": args.messages}
    for store in args.stores:
        with tempfile.TemporaryDirectory() as scratch, gateway(store, Path(scratch)) as where:
            url, key = where.split("|")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
                started = time.monotonic()
                thread = fill(http, args.messages)
                filled_s = time.monotonic() - started
                walked = {order: [walk(http, thread, order) for _ in range(args.walks)] for order in ("desc", "asc")}
        for order, walks in walked.items():
            results[f"{store}-{order}"] = _row(walks, filled_s)
            print(json.dumps({f"{store}-{order}": results[f"{store}-{order}"]}), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
