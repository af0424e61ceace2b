"""Benchmark: many idle sockets against ``gristmill serve`` under a low descriptor limit (issue 15, principle 9).

Starts ``gristmill serve MODEL`` on 127.0.0.1 with ``RLIMIT_NOFILE`` lowered to ``--nofile``, opens
``--sockets`` TCP connections that never send a byte, asks ``GET /health`` once a second for ``--seconds``
seconds, then counts what the idle sockets got (a 503, or closed by the server), closes them, asks
``/health`` once more and stops the server. Reports the answers, the server log's size and its
tracebacks. ``--src`` runs another checkout's code (for a before/after comparison). 127.0.0.1 only.

    python benchmarks/idle_sockets.py FT [--src src] [--sockets 1100] [--nofile 1024] [--seconds 10] [-- SERVE ARGS]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def health(port: int, timeout: float = 2.0) -> tuple[object, float]:
    start = time.perf_counter()
    try:
        status: object = httpx.get(f"http://127.0.0.1:{port}/health", timeout=timeout).status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, round(time.perf_counter() - start, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    parser.add_argument("--sockets", type=int, default=1100)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=18765)
    args, serve_args = parser.parse_known_args()
    serve_args = [a for a in serve_args if a != "--"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < args.sockets + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.sockets + 200), hard))

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))

    log_path = Path(tempfile.mkdtemp()) / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(args.src), "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "gristmill", "serve", str(args.model), "--port", str(args.port),
                                   "--threads", "1", *serve_args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                  preexec_fn=low_limit)
    try:
        while health(args.port, 1.0)[0] != 200:
            if server.poll() is not None:
                sys.exit(f"the server stopped:\n{log_path.read_text()}")
            time.sleep(0.2)
        sockets = []
        for _ in range(args.sockets):
            try:
                sockets.append(socket.create_connection(("127.0.0.1", args.port), timeout=15))
            except OSError as exc:
                print(f"connection {len(sockets) + 1} failed: {exc}")
                break
        started, answers = time.monotonic(), []
        while time.monotonic() - started < args.seconds:
            ask = time.monotonic()
            answers.append((round(ask - started, 1), *health(args.port)))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - ask)))
        refused = closed = 0
        for s in sockets:
            s.setblocking(False)
            try:
                data = s.recv(200)
                refused += data.startswith(b"HTTP/1.1 503")
                closed += data == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            s.close()
        time.sleep(1)
        after = health(args.port, 5.0)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log_path.read_text()
    print(f"{len(sockets)} idle sockets opened; /health during (s, status, latency s): {answers}")
    print(f"idle sockets answered 503: {refused}, closed by the server: {closed}; /health after: {after[0]}")
    print(f"server log: {len(text):,} bytes, {text.count('Traceback'):,} tracebacks; exit status {server.returncode}")


if __name__ == "__main__":
    main()
