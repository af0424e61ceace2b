"""A model-free engine for the HTTP hardening tests: answers every text at once, so the tests measure the
server (limits, time-outs, checks), not a model. Run as a module it serves on 127.0.0.1:PORT:

    python -m tests.serve.fake_engine PORT [--max-connections N] [--read-timeout S] [--token T]
"""

from __future__ import annotations

import argparse
from typing import Any

from gristmill.serve.server import Access, Engine, Limits, run_server


def fake_engine() -> Engine:
    def run_batch(items: list[Any]) -> list[dict[str, Any]]:
        return [{"label": "a", "score": 1.0, "probabilities": {"a": 1.0, "b": 0.0}} for _ in items]

    return Engine("classifier", "fake", "none", run_batch, lambda: 0, labels=["a", "b"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--read-timeout", type=float, default=30.0)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    limits = Limits(max_connections=args.max_connections, read_timeout_s=args.read_timeout, max_wait_ms=1)
    access = Access(token=args.token, allowed_hosts=None) if args.token else None
    run_server(fake_engine(), args.host, args.port, limits, "info", access)


if __name__ == "__main__":
    main()
