"""Parity with plain schemathesis: on the same spec and the same target, every failure that
`schemathesis run` finds with its default settings is reported by `workerprobe test` too, or is one
the suite leaves out by design, with the reason said.

    .venv/bin/python bench/schemathesis_parity.py                          # the reference gateway
    .venv/bin/python bench/schemathesis_parity.py --url URL/v1 --key KEY   # any target
    .venv/bin/python bench/schemathesis_parity.py --defect modify_stores_null   # a seeded defect

Both run against the target one after the other: `schemathesis run` from an empty folder (no
configuration file: its defaults), then `workerprobe test` (its budget lifted: the target is
yours). Each schemathesis failure (operation, check) is then found in the suite's findings.json
(its rule's check on that operation, or on the create blamed for data read back wrong, or the
operation's family reported as not implemented), or matched to a reason the suite leaves it out:

- a method the operation does not have (QUERY, TRACE): no OpenAI client sends one, OpenAI answers
  it 404, and a runtime answers some before the Worker's code runs;
- RFC 9110 hygiene (405 with Allow) that is not OpenAI's behaviour (OpenAI answers 404);
- a schema-valid request OpenAI itself refuses (a model's context window, a thread's active run, a
  model the target was not said to serve);
- an error answer's shape, which the suite judges by the OpenAI envelope rules instead.

Writes reports/parity.json; exit 1 when a failure was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import schemathesis.openapi.checks  # noqa: F401  (defines the OpenAPI failures and their codes)
from schemathesis.core.failures import Failure

from workerprobe.procs import gateway_over_emulator
from workerprobe.suite import (
    checks,  # noqa: F401  (registers the OpenAI rules)
    operations,
)
from workerprobe.suite.contract import SPEC
from workerprobe.suite.registry import RULES, refused_as_openai_does
from workerprobe.suite.target import chat_model, embedding_model

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent
# Statuses the suite's configuration counts as a rejection besides schemathesis's defaults.
REJECTIONS = {413: "a body over the size limit answered 413 is a rejection (the suite's negative_data_rejection)"}
BY_DESIGN = {
    "unsupported_method": "RFC 9110 hygiene: OpenAI answers a method an endpoint lacks 404, not 405",
    "allow_header_conformance": "RFC 9110 hygiene (Allow on a 405), not OpenAI's behaviour",
}


def _codes() -> dict[str, tuple[str, ...]]:
    """schemathesis's failure codes (ST202) and the checks that raise them."""
    found: dict[str, tuple[str, ...]] = {}
    pending = list(Failure.__subclasses__())
    while pending:
        kind = pending.pop()
        pending += kind.__subclasses__()
        code, names = getattr(kind, "code", None), getattr(kind, "checks", ())
        if isinstance(code, str) and names:
            found[code] = tuple(names)
    return found


@dataclass
class Seen:
    """One failure schemathesis reported."""

    operation: str
    code: str
    title: str
    checks: tuple[str, ...]
    status: int
    method: str
    body: str
    verdict: str = ""  # "reported" | "by design: <why>" | "MISSED"
    model: str | None = None  # the request's model, where it named one


_SECTION = re.compile(r"^\d+\. Test Case ID: ", re.MULTILINE)
_FAILURE = re.compile(r"^- (ST\d+) (.+)$", re.MULTILINE)
_STATUS = re.compile(r"^\[(\d{3})\] [^\n]*:\n\n\s*`(.*?)`\n", re.MULTILINE | re.DOTALL)
_CURL = re.compile(r"curl -X (\w+) .*?(https?://\S+)")
_MODEL = re.compile(r"""-d '\{[^\n]*?"model": ("(?:[^"\\]|\\.)*")""")


def failures(junit: Path) -> list[Seen]:
    codes = _codes()
    seen = []
    for case in ET.parse(junit).iter("testcase"):
        for failure in case:
            if failure.tag not in ("failure", "error"):
                continue
            for section in _SECTION.split(failure.text or "")[1:]:
                status = _STATUS.search(section)
                method = _CURL.search(section)
                name = str(case.get("name"))
                if method and not name.startswith(("GET ", "POST ", "DELETE ", "PUT ", "PATCH ")):
                    # a stateful test's step: the operation its request hit
                    hit = operations.load().match(method.group(1), urlsplit(method.group(2)).path)
                    name = hit.label if hit is not None else name
                for code, title in _FAILURE.findall(section):
                    seen.append(
                        Seen(
                            name,
                            code,
                            title.strip(),
                            codes.get(code, ()),
                            int(status.group(1)) if status else 0,
                            method.group(1) if method else "",
                            status.group(2) if status else "",
                            model=json.loads(found.group(1)) if (found := _MODEL.search(section)) else None,
                        )
                    )
    return seen


def reported(findings: dict[str, object]) -> tuple[set[tuple[str, str]], set[str]]:
    """(operation, check) pairs the suite reported, and the operations it called not implemented."""
    pairs: set[tuple[str, str]] = set()
    missing: set[str] = set()
    for cause in findings.get("causes", []):  # type: ignore[attr-defined]
        ops = set(cause["operations"]) | set(cause.get("read_back_by", []))
        if cause["rule"] == "not_implemented":
            missing |= ops
            continue
        rule = RULES.get(cause["rule"])
        check = rule.check if rule is not None else cause["rule"]
        pairs |= {(op, check) for op in ops}
    return pairs, missing


def judge(one: Seen, pairs: set[tuple[str, str]], missing: set[str]) -> str:
    if one.operation in missing or any((one.operation, check) in pairs for check in one.checks):
        return "reported"
    declared = one.operation.split(" ", 1)[0]
    if one.method and one.method != declared:
        return "by design: a method the operation does not have; no OpenAI client sends it, OpenAI answers it 404"
    for check in one.checks:
        if check in BY_DESIGN:
            return f"by design: {BY_DESIGN[check]}"
    if "negative_data_rejection" in one.checks and one.status in REJECTIONS:
        return f"by design: {REJECTIONS[one.status]}"
    if "positive_data_acceptance" in one.checks:
        why = refused_as_openai_does(one.status, one.body.encode())
        if why:
            return f"by design: {why}"
        if one.model is not None and one.model not in (chat_model(), embedding_model()) and 400 <= one.status < 500:
            return "by design: a model the target was not said to serve, which OpenAI refuses too (404 model_not_found)"
    if "response_schema_conformance" in one.checks and one.status >= 400:
        envelope = {(one.operation, r.check) for r in RULES.values() if r.name.startswith("openai_error")}
        if envelope & pairs:
            return "reported (as the OpenAI error envelope rules)"
    return "MISSED"


@contextmanager
def target(url: str | None, key: str | None, defect: str | None = None) -> Iterator[tuple[str, str]]:
    """(root, key) of the target: the one given, or the reference gateway over the emulator (with
    one of the selftest's seeded defects, when named)."""
    if url:
        yield url.rstrip("/").removesuffix("/v1"), key or ""
        return
    key = f"sk-{secrets.token_hex(8)}"
    served = ((("--defects", json.dumps([defect])), "workerprobe.suite.defects") if defect else
              (("gateway",), "workerprobe"))  # fmt: skip
    with tempfile.TemporaryDirectory() as home:
        database = str(Path(home) / "gateway.sqlite3")
        with gateway_over_emulator(api_key=key, token=secrets.token_hex(8), database=database, gateway=served) as (
            gateway,
            _,
        ):
            yield gateway.url, key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the target's base URL ending in /v1 (default: the reference gateway)")
    parser.add_argument("--key", help="its API key")
    parser.add_argument("--defect", help="the reference gateway with this seeded defect (workerprobe.suite.defects)")
    parser.add_argument("--seed", default="1", help="schemathesis's seed (a run is reproducible)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "parity.json"))
    args = parser.parse_args(argv)
    with target(args.url, args.key, args.defect) as (root, key), tempfile.TemporaryDirectory() as empty:
        started = time.monotonic()
        plain = subprocess.run(
            [str(VENV / "schemathesis"), "run", str(SPEC), "--url", root, "-H", f"Authorization: Bearer {key}",
             "--seed", args.seed, "--report", "junit", "--report-dir", empty],
            cwd=empty, capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        plain_s = time.monotonic() - started
        junit = next(Path(empty).glob("junit*.xml"), None)
        if junit is None:
            print(plain.stdout[-3000:] + plain.stderr[-2000:])
            return 2
        found = failures(junit)
        reports = Path(empty) / "reports"
        started = time.monotonic()
        suite = subprocess.run(
            [str(VENV / "workerprobe"), "test", f"{root}/v1", "--key", key, "--report", str(reports),
             "--max-neurons", "1e9"],
            cwd=empty, capture_output=True, text=True, timeout=3600, check=False,
            env={k: v for k, v in os.environ.items() if k not in ("CLOUDFLARE_WORKER_URL", "API_KEY")},
        )  # fmt: skip
        suite_s = time.monotonic() - started
        reports = reports / "latest"
        if not (reports / "findings.json").exists():
            print(suite.stdout[-3000:])
            return 2
        pairs, missing = reported(json.loads((reports / "findings.json").read_text()))
    for one in found:
        one.verdict = judge(one, pairs, missing)
    missed = [f for f in found if f.verdict == "MISSED"]
    result = {
        "target": args.url or f"the reference gateway over the emulator{f' with {args.defect}' if args.defect else ''}",
        "schemathesis": {"exit": plain.returncode, "failures": len(found), "wall_s": round(plain_s, 1)},
        "workerprobe": {
            "exit": suite.returncode, "last_line": suite.stdout.strip().splitlines()[-1:], "wall_s": round(suite_s, 1)
        },
        "missed": len(missed),
        "failures": [asdict(f) for f in found],
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for one in found:
        print(f"{one.verdict[:60]:60}  {one.code} {one.operation} (HTTP {one.status}, {one.method or '?'})")
    print(
        f"schemathesis: {len(found)} failure(s) in {plain_s:.0f} s; workerprobe: {suite_s:.0f} s; "
        f"missed by workerprobe: {len(missed)} ({args.out})"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
