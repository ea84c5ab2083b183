"""Where the load profiles' TTFT error comes from, by each user's request number: USERS gevent users
(as Locust runs them), each making REQUESTS streamed chat completions one after another on a
session of its own, all started at once, through the gateway to the emulator (TTFT 200 ms, 20 ms a
token; both on core 0, this script on core 1). Per request: the TTFT measured here minus the
emulator's own (its trace, by x-request-id), and the gateway's own time (x-workerprobe-overhead-ms).
`--warm N` first sends N requests one by one, so that code paths and one upstream connection are
warm before the users start.

    .venv/bin/python bench/accuracy_by_request.py [--users 32] [--requests 11] [--warm 0]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import requests  # noqa: E402

from workerprobe.catalogue import load as load_catalogue  # noqa: E402
from workerprobe.procs import gateway_over_emulator  # noqa: E402

MODEL = load_catalogue().default("text-generation").name
MESSAGES = [{"role": "user", "content": "Tell me about harbours"}]
BODY = orjson.dumps({"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": 64})
KEY = "bench"


def _first_content(response: requests.Response) -> float:
    """When the first chunk with non-empty content arrived (the load profiles' TTFT)."""
    first = 0.0
    for chunk in response.iter_content(None):
        if first:
            continue  # read to the end, as a user does
        for line in chunk.split(b"\n"):
            if line.startswith(b"data: {"):
                choices = orjson.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter()
                    break
    return first


def user(url: str, count: int, out: list[tuple[int, str, float, float]]) -> None:
    session = requests.Session()
    for number in range(count):
        request_id = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "x-request-id": request_id}
        sent = time.perf_counter()
        with session.post(url, data=BODY, headers=headers, stream=True) as response:
            response.raise_for_status()
            ttft = _first_content(response) - sent
            own = float(response.headers.get("x-workerprobe-overhead-ms", "nan")) / 1000
        out.append((number, request_id, ttft, own))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--requests", type=int, default=11)
    parser.add_argument("--warm", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    emulator_env = {"WORKERPROBE_EMULATOR_TTFT_MS": "200", "WORKERPROBE_EMULATOR_TPOT_MS": "20"}
    with gateway_over_emulator(api_key=KEY, token="bench", cpu=0, emulator_env=emulator_env) as (gateway, emulator):
        url = f"{gateway.url}/v1/chat/completions"
        out: list[tuple[int, str, float, float]] = []
        if args.warm:
            user(url, args.warm, out)
            out.clear()
        gevent.joinall([gevent.spawn(user, url, args.requests, out) for _ in range(args.users)], raise_error=True)
        traces: dict[str, dict] = {}
        ids = [row[1] for row in out]
        for start in range(0, len(ids), 50):
            got = requests.get(f"{emulator.url}/__emulator/trace", params={"ids": ",".join(ids[start : start + 50])})
            traces |= got.json()
    rows: dict[int, list[tuple[float, float]]] = {}
    for number, request_id, ttft, own in out:
        trace = traces[request_id]
        server = trace["tokens"][0] - trace["arrived"]
        rows.setdefault(min(number, 3), []).append(((ttft - server) * 1000, own * 1000))
    print(f"{args.users} users at once, {args.requests} requests each, warm-up {args.warm}: ms")
    print(f"{'request':<10}{'n':>5}{'error p50':>11}{'error p95':>11}{'error max':>11}{'own p50':>9}{'own max':>9}")
    for number, cells in sorted(rows.items()):
        errors = sorted(c[0] for c in cells)
        own = [c[1] for c in cells]
        label = f"{number + 1}" + ("+" if number == 3 else "")
        p95 = errors[max(int(0.95 * len(errors)) - 1, 0)]
        print(
            f"{label:<10}{len(cells):>5}{statistics.median(errors):>11.1f}{p95:>11.1f}{errors[-1]:>11.1f}"
            f"{statistics.median(own):>9.2f}{max(own):>9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
