"""What keeps ``gristmill serve`` up and private: connection limits, read time-outs, Host and token checks.

Two layers, both in front of the FastAPI app of :mod:`gristmill.serve.server`:

* :func:`guarded_protocol`, uvicorn's HTTP/1.1 protocol (h11) with two additions. A connection beyond
  ``max_connections`` is answered ``503`` and closed at once, so idle sockets can never use up the
  process's file descriptors (at the descriptor limit ``accept()`` fails in a loop and nothing is
  answered any more). A connection that has not sent a complete request head within
  ``header_timeout`` seconds of opening, or of starting its next request, is closed (uvicorn's own
  keep-alive time-out only starts after a first response, so a socket that never sends a byte, or
  sends its headers one byte a minute, would otherwise be held forever).
* :class:`Guard`, ASGI middleware: a ``Host`` header outside ``allowed_hosts`` gets ``400`` (a web page
  that rebinds its DNS name to 127.0.0.1 cannot reach a loopback service through the victim's
  browser), and without ``Authorization: Bearer <token>`` every path but ``GET /health`` gets ``401``
  when a token is set.

Why not uvicorn's own settings alone: ``limit_concurrency`` answers 503 only once a request has arrived,
so sockets that never send one still hold descriptors; ``timeout_keep_alive`` (used, ``--keep-alive``)
runs only between requests; uvicorn has no time limit on reading a request head.

This module neither loads models nor parses request bodies (``server.BodyLimit`` bounds their size
and the time to receive them).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("gristmill.serve")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for a bind address reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(bind: str) -> tuple[str, ...] | None:
    """Host names a loopback service answers to; None (any) for other binds, whose names we cannot know."""
    return tuple(dict.fromkeys((*LOOPBACK_NAMES, bind.strip("[]").lower()))) if is_loopback(bind) else None


def access_warning(bind: str, token: str | None) -> str | None:
    """The warning for a service other machines can reach without a token, else None."""
    if is_loopback(bind) or token:
        return None
    return (f"binding to {bind}, reachable from other machines, without a token: anyone who can connect may use "
            "the model; set GRISTMILL_TOKEN (or --token) to require one")


def connection_budget(max_connections: int | None = None, limit: int = 4096, headroom: int = 64) -> tuple[int, int]:
    """(open connections allowed, listen backlog) for this process's descriptor limit.

    asyncio accepts up to ``backlog`` pending connections per wake-up before any of them reaches the
    connection cap, so the cap plus the backlog must stay below the descriptors left (less a reserve
    for the process's own files): otherwise ``accept()`` fails with EMFILE, and asyncio logs a
    traceback each time it retries. An explicit ``max_connections`` is taken as given.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        unlimited = soft == resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):
        soft, unlimited = 1024, False
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    available = limit + limit // 4 if unlimited else max(16, soft - in_use - headroom)
    backlog = min(2048, max(8, available // 5))
    if max_connections is None:
        max_connections = max(8, min(limit, available - backlog))
    return max_connections, backlog


class AcceptErrorFilter(logging.Filter):
    """One line, at most once a minute, instead of asyncio's traceback on every failed ``accept()`` retry."""

    def __init__(self) -> None:
        super().__init__()
        self.last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if "socket.accept() out of system resource" not in record.getMessage():
            return True
        now = record.created
        if now - self.last < 60:
            return False
        self.last = now
        record.msg, record.args, record.exc_info, record.exc_text = (
            "accept() failed: out of file descriptors; lower --max-connections or raise `ulimit -n`", None, None, None)
        return True


def _plain_response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode("ascii") + body


def guarded_protocol(max_connections: int, header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a connection cap (503) and a time limit on reading a request head."""
    refusal = _plain_response(503, "Service Unavailable",
                              f"more than {max_connections} open connections; try again shortly")

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.transport.write(refusal)
                self.transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first bytes of a next request on a kept-alive connection
            super().data_received(data)
            if self._header_timer is not None and self.conn.their_state is not h11.IDLE:
                self._disarm()  # the head is complete; the body has its own time limit (BodyLimit)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                # As uvicorn's own keep-alive time-out: no response, the connection is simply closed.
                self.conn.send(h11.ConnectionClosed())
                self.transport.close()

    return GuardedH11Protocol


def _host_name(value: bytes) -> str:
    """The name part of a Host header: ``[::1]:8000`` -> ``::1``, ``Example.com.:80`` -> ``example.com``."""
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class Guard:
    """ASGI middleware: refuse requests with a foreign ``Host`` (400) or without the bearer token (401)."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str] | None = None, token: str | None = None,
                 open_paths: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        hosts = None if allowed_hosts is None else {h.strip("[]").lower().rstrip(".") for h in allowed_hosts}
        self.allowed_hosts = None if hosts is None or "*" in hosts else hosts
        self.token = token.encode("utf-8") if token else None
        self.open_paths = open_paths

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if (self.allowed_hosts is not None and b"host" in headers
                and _host_name(headers[b"host"]) not in self.allowed_hosts):
            await reply(send, 400, "this server does not answer to that Host name (see --allowed-host)")
            return
        if self.token is not None and scope.get("path") not in self.open_paths:
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self.token):
                await reply(send, 401, "missing or wrong bearer token (header Authorization: Bearer <token>)",
                             [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


async def reply(send: Callable, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None,
                 close: bool = False) -> None:
    """A JSON ``{"detail": ...}`` answer sent straight from middleware."""
    payload = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               *(extra or [])]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
