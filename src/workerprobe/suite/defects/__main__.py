"""Serve a gateway with seeded defects (the selftest's and the load tests' target)."""

from __future__ import annotations

import argparse
import json

from workerprobe.gateway import create_app
from workerprobe.server import serve_app
from workerprobe.settings import GatewaySettings
from workerprobe.suite.defects import parts, validate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--defects", required=True, help="a JSON list of defect names")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = GatewaySettings(host=args.host, port=args.port)
    chosen = validate(json.loads(args.defects))
    serve_app(create_app(settings, parts=parts(chosen, settings.api_key)), args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
