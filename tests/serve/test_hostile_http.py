"""The service against hostile clients: bodies JSON cannot answer with (NaN, surrogates), deep or huge input,
wrong types (a hypothesis fuzz), Host and token checks, slow bodies, idle and slow sockets, a connection cap
and the descriptor limit. A model-free engine (``fake_engine``) keeps these about the server."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gristmill.serve.guard import _host_name, access_warning, default_allowed_hosts, is_loopback
from gristmill.serve.server import Access, BodyLimit, Engine, Limits, create_app

from .conftest import ROOT, free_port
from .fake_engine import fake_engine


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(fake_engine(), Limits(max_body_bytes=50_000, max_texts=8, max_wait_ms=1)),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def mlm_client():
    engine = Engine("masked-lm", "fake", "none", lambda items: [[] for _ in items], lambda: 0,
                    encode_check=lambda texts, _max: [None] * len(texts))
    with TestClient(create_app(engine, Limits(max_texts=4)), raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, body: bytes, path: str = "/predict") -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


HOSTILE_BODIES = [
    # (body, expected status): JSON that Python parses but cannot write back, and parsers' limits
    (b'{"inputs": NaN}', 422),
    (b'{"inputs": Infinity}', 422),
    (b'{"inputs": -Infinity}', 422),
    (b'{"inputs": 1e999}', 422),  # overflows to inf
    (b'{"inputs": ["ok", NaN]}', 422),
    (b'{"inputs": "ok", "text_pair": NaN}', 422),
    (b'{"\\ud800": "key"}', 422),  # a lone surrogate in a field name, echoed in the error's location
    (b'{"inputs": 5, "\\udfff": NaN}', 422),
    (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422),  # deep but within the body limit
    (b'{"inputs": ' + b"[" * 40000 + b"]" * 40000 + b"}", 413),
    (b'{"inputs": ' + b"9" * 5000 + b"}", 400),  # Python refuses ints over 4,300 digits
    (b'{"inputs": "x", "inputs": 3}', 422),  # duplicate key: the last one wins
    (b"\xff\xfe\x00", 422),
    (b'{"inputs": "unterminated', 422),
    (b"", 422),
    (b"null", 422),
    (b"[]", 422),
    (b'{"inputs": true}', 422),
    (b'{"inputs": {"$ref": "/etc/passwd"}}', 422),
    (b'{"inputs": "' + b"x" * 60_000 + b'"}', 413),
]


@pytest.mark.parametrize("body,status", HOSTILE_BODIES, ids=[str(i) for i in range(len(HOSTILE_BODIES))])
def test_hostile_predict_bodies_are_4xx(client, body: bytes, status: int) -> None:
    response = post(client, body)
    assert response.status_code != 500
    if status == 422 and response.status_code == 400:  # parsers differ on what is malformed vs invalid
        status = 400
    assert response.status_code == status, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize("body", [b'{"inputs": "a [MASK]", "top_k": NaN}', b'{"inputs": "a [MASK]", "top_k": 1e400}',
                                  b'{"inputs": "a [MASK]", "top_k": ' + b"9" * 400 + b"}",
                                  b'{"inputs": "a [MASK]", "top_k": -1}'])
def test_hostile_fill_mask_bodies_are_422(mlm_client, body: bytes) -> None:
    response = post(mlm_client, body, "/fill-mask")
    assert response.status_code == 422, response.text


def test_good_requests_still_answer(client) -> None:
    assert post(client, b'{"inputs": ["caf\\u00e9", "\\ud83d\\ude00 a real pair of surrogates"]}').status_code == 200
    # Lone surrogates in a text are replaced (classifier.clean_text), never a 500.
    assert post(client, b'{"inputs": ["fine", "\\udfff tail", "\\ud800"]}').status_code == 200
    assert post(client, b'{"inputs": "nul \\u0000 is a character"}').status_code == 200


json_leaves = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
               | st.sampled_from(["\ud800", "a\udfffb", "\ud83d", "[MASK] \udc00"]))  # lone surrogates
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(["inputs", "text_pair", "top_k", "x"]) | st.text(max_size=5),
                                             inner, max_size=4), max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values.map(lambda v: {"inputs": v}), json_values,
                      st.fixed_dictionaries({"inputs": json_values, "text_pair": json_values})))
def test_fuzz_json_bodies_never_500(client, body) -> None:
    # ensure_ascii writes lone surrogates as escapes (\ud800) and NaN/Infinity as Python's json does
    data = json.dumps(body, ensure_ascii=True, allow_nan=True).encode()
    response = post(client, data)
    assert 200 <= response.status_code < 500 and response.status_code != 500, (data[:200], response.text)
    response.json()  # the answer itself is always valid JSON


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
def test_fuzz_raw_bytes_never_500(client, body: bytes) -> None:
    response = post(client, body)
    assert 400 <= response.status_code < 500 or response.status_code == 200, (body, response.text)


# ------------------------------------------------------------------------------------------ Host and token


def test_host_header_check_blocks_dns_rebinding() -> None:
    app = create_app(fake_engine(), Limits(), Access(allowed_hosts=default_allowed_hosts("127.0.0.1")))
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.post("/predict", json={"inputs": "x"}).status_code == 200
        for host, status in [("evil.example", 400), ("evil.example:8000", 400), ("127.0.0.1.evil.example", 400),
                             ("localhost:8000", 200), ("LOCALHOST.", 200), ("[::1]:8000", 200), ("127.0.0.1", 200)]:
            response = c.post("/predict", json={"inputs": "x"}, headers={"host": host})
            assert response.status_code == status, (host, response.text)
        assert c.get("/health", headers={"host": "evil.example"}).status_code == 400


def test_bearer_token() -> None:
    app = create_app(fake_engine(), Limits(), Access(token="s3cret-token"))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200  # probes stay open
        for headers in [{}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"},
                        {"authorization": "Basic s3cret-token"}, {"authorization": "Bearer s3cret-token-and-more"}]:
            response = c.post("/predict", json={"inputs": "x"}, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", headers
        assert c.get("/docs").status_code == 401
        ok = c.post("/predict", json={"inputs": "x"}, headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200


def test_bind_addresses_and_warning() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.5")
    assert default_allowed_hosts("0.0.0.0") is None and "localhost" in default_allowed_hosts("127.0.0.1")
    assert access_warning("0.0.0.0", None) and "GRISTMILL_TOKEN" in access_warning("10.0.0.2", "")
    assert access_warning("0.0.0.0", "t") is None and access_warning("127.0.0.1", None) is None
    assert _host_name(b"[::1]:80") == "::1" and _host_name(b"Example.COM.:443") == "example.com"


def test_slow_body_is_408() -> None:
    async def never(*_args):
        await asyncio.sleep(3600)

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(*_args):  # pragma: no cover - must not be reached
        raise AssertionError("the app ran without a body")

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"10")]}
    asyncio.run(BodyLimit(app, 1000, timeout_s=0.2)(scope, never, send))
    assert sent[0]["status"] == 408


# --------------------------------------------------------------------------------------- a real process


def start_server(tmp_path: Path, *args: str, preexec=None) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.serve.fake_engine", str(port), *args], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env, preexec_fn=preexec)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port, log
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def idle_sockets(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing ``s`` within ``timeout`` (None: still open)."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def health(port: int) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code
    except httpx.TransportError as exc:  # the 503 of a refused connection may race its reset
        return 503 if "503" in str(exc) or isinstance(exc, httpx.RemoteProtocolError) else -1


@pytest.mark.slow
def test_connection_cap_and_header_timeout(tmp_path: Path) -> None:
    proc, port, log = start_server(tmp_path, "--max-connections", "16", "--read-timeout", "1.5")
    socks: list[socket.socket] = []
    try:
        socks = idle_sockets(port, 16)
        time.sleep(0.2)
        extra = idle_sockets(port, 6)
        for s in extra:  # beyond the cap: answered 503 at once and closed
            answer = closed_by_server(s, 5)
            assert answer is not None and answer.startswith(b"HTTP/1.1 503"), answer
        assert health(port) == 503
        for s in socks:  # the idle ones are closed after the read time-out, without an answer
            assert closed_by_server(s, 5) == b""
        assert health(port) == 200
        # A slow client: half a request head, never finished.
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert closed_by_server(slow, 5) == b""
        # A kept-alive connection that starts a second request and stalls is closed as well.
        keep = socket.create_connection(("127.0.0.1", port), timeout=5)
        keep.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        keep.settimeout(5)
        assert keep.recv(4096).startswith(b"HTTP/1.1 200")
        keep.sendall(b"GET /health HTTP/1.1\r\nHo")
        rest = closed_by_server(keep, 5)  # perhaps the end of the first answer, never a second one
        assert rest is not None and b"HTTP/1.1" not in rest
        assert proc.poll() is None
    finally:
        for s in socks:
            s.close()
        stop(proc)
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_many_idle_sockets_under_a_low_descriptor_limit(tmp_path: Path) -> None:
    """The issue's case scaled down: more idle sockets than the server's descriptor limit (256 here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 700:
        pytest.skip(f"this test process may open only {soft} files")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    proc, port, log = start_server(tmp_path, "--read-timeout", "2", preexec=low_limit)
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(400):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        assert health(port) in (200, 503)  # answered, never hanging
        time.sleep(2.5)  # the read time-out frees every idle socket
        assert health(port) == 200
        assert proc.poll() is None and time.monotonic() - started < 30
    finally:
        for s in socks:
            s.close()
        stop(proc)
    text = log.read_text()
    assert "Traceback" not in text and len(text) < 20_000, text[-2000:]


def test_serve_command_passes_token_hosts_and_limits(monkeypatch, tmp_path: Path) -> None:
    """`gristmill serve`: GRISTMILL_TOKEN, --allowed-host and the limits reach run_server (no socket is bound)."""
    from typer.testing import CliRunner

    from gristmill.cli import app
    from gristmill.serve import loading, server

    calls: list[tuple] = []
    monkeypatch.setattr(loading, "load_classifier", lambda *a, **k: object())
    monkeypatch.setattr(server, "classifier_engine", lambda clf: fake_engine())
    monkeypatch.setattr(server, "run_server", lambda *args: calls.append(args))
    runner = CliRunner()
    result = runner.invoke(app, ["serve", str(tmp_path)], env={"GRISTMILL_TOKEN": "from-env"})
    assert result.exit_code == 0, result.output
    _engine, host, _port, limits, _level, access = calls[-1]
    assert host == "127.0.0.1" and access.token == "from-env" and "localhost" in access.allowed_hosts
    assert limits.read_timeout_s == 30 and limits.max_connections is None
    result = runner.invoke(app, ["serve", str(tmp_path), "--host", "0.0.0.0", "--allowed-host", "models.example",
                                 "--max-connections", "50", "--read-timeout", "2.5"], env={"GRISTMILL_TOKEN": ""})
    assert result.exit_code == 0, result.output
    _engine, host, _port, limits, _level, access = calls[-1]
    assert access.token is None and access.allowed_hosts == ("models.example",)
    assert limits.max_connections == 50 and limits.read_timeout_s == 2.5
