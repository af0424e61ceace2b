"""The HTTP service: every endpoint, malformed input (4xx, never 500), micro-batching, a real process and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from gristmill.serve.fill_mask import MaskFiller
from gristmill.serve.loading import load_classifier
from gristmill.serve.server import Limits, MicroBatcher, classifier_engine, create_app, fill_mask_engine

from .conftest import ROOT, THREADS, free_port


@pytest.fixture(scope="module")
def classifier(tiny_ft: Path):
    return load_classifier(tiny_ft, batch_size=8)


@pytest.fixture(scope="module")
def client(classifier):
    limits = Limits(max_body_bytes=20_000, max_texts=8, max_wait_ms=1)
    with TestClient(create_app(classifier_engine(classifier), limits)) as c:
        yield c


@pytest.fixture(scope="module")
def mlm_client(tiny_mlm: Path):
    with TestClient(create_app(fill_mask_engine(MaskFiller(tiny_mlm)), Limits(max_texts=4))) as c:
        yield c


def test_health_and_openapi(client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["kind"] == "classifier" and health["backend"] == "torch"
    assert health["labels"] == ["computers", "definitions", "people", "politics", "science", "zippy"]
    schema = client.get("/openapi.json").json()
    assert "/predict" in schema["paths"] and "/health" in schema["paths"] and "/fill-mask" not in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_predict_one_text_and_a_list(client, classifier) -> None:
    texts = ["The computer crashed again.", "Are we having fun yet?", "A politician is an arse upon which everyone "
             "has sat except a man."]
    one = client.post("/predict", json={"inputs": texts[0]})
    assert one.status_code == 200
    [prediction] = one.json()["predictions"]
    many = client.post("/predict", json={"inputs": texts}).json()["predictions"]
    assert len(many) == 3 and many[0]["label"] == prediction["label"]
    # Alone or padded in a batch with longer texts: the same probabilities up to float rounding.
    np.testing.assert_allclose([many[0]["probabilities"][lab] for lab in classifier.labels],
                               [prediction["probabilities"][lab] for lab in classifier.labels], atol=1e-5)
    expected = classifier.predict_proba(texts)
    for row, got in zip(expected, many, strict=True):
        assert got["label"] == classifier.labels[int(row.argmax())]
        np.testing.assert_allclose([got["probabilities"][lab] for lab in classifier.labels], row, atol=1e-5)


MALFORMED = [
    # (body, headers, expected status)
    ({"inputs": 5}, None, 422),
    ({"inputs": None}, None, 422),
    ({"inputs": []}, None, 422),
    ({"inputs": ["ok", 3]}, None, 422),
    ({"inputs": {"text": "nested"}}, None, 422),
    ({"text": "wrong field name"}, None, 422),
    ({"inputs": "x", "model": "/etc/passwd"}, None, 422),  # nothing in a request names a file
    ({"inputs": "x", "text_pair": "y"}, None, 422),  # the model takes single texts
    ([1, 2, 3], None, 422),
    ("just a string", None, 422),
    (b"{not json", {"content-type": "application/json"}, 422),
    (b"", {"content-type": "application/json"}, 422),
    (b'{"inputs": "\xff\xfe"}', {"content-type": "application/json"}, 400),  # not UTF-8
    (b"inputs=hello", {"content-type": "application/x-www-form-urlencoded"}, 422),
    ({"inputs": ["t"] * 9}, None, 413),  # more texts than max_texts
    ({"inputs": "y" * 30_000}, None, 413),  # body over max_body_bytes
]


@pytest.mark.parametrize(("body", "headers", "status"), MALFORMED)
def test_malformed_predict_requests_are_4xx(client, body, headers, status) -> None:
    if isinstance(body, bytes):
        response = client.post("/predict", content=body, headers=headers)
    else:
        response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


def test_other_edge_requests(client) -> None:
    surrogate = client.post("/predict", content=b'{"inputs": "lone surrogate \\ud800"}',
                            headers={"content-type": "application/json"})
    assert surrogate.status_code == 200  # JSON allows it; the tokenizer gets a replacement character
    assert client.post("/predict", json={"inputs": ""}).status_code == 200  # empty text: [CLS] [SEP]
    assert client.post("/predict", json={"inputs": "word " * 5000}).status_code == 413
    assert client.post("/predict", json={"inputs": "fits " * 3000}).status_code == 200  # truncated to max_length
    assert client.get("/predict").status_code == 405
    assert client.post("/fill-mask", json={"inputs": "a [MASK]"}).status_code == 404
    assert client.get("/../etc/passwd").status_code == 404
    chunked = client.post("/predict", content=(b"x" * 10_000 for _ in range(5)),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 413  # no Content-Length: counted while reading


def test_fill_mask(mlm_client, tiny_mlm: Path) -> None:
    import torch

    health = mlm_client.get("/health").json()
    assert health["kind"] == "masked-lm"
    schema = mlm_client.get("/openapi.json").json()
    assert "/fill-mask" in schema["paths"] and "/predict" not in schema["paths"]
    response = mlm_client.post("/fill-mask", json={"inputs": ["the [MASK] is red", "[MASK] and [MASK]"], "top_k": 3})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert [m["position"] for m in first] == [2] and [m["position"] for m in second] == [1, 3]
    assert all(len(m["candidates"]) == 3 for m in first + second)
    # The candidates are the model's own top 3 at that position.
    filler = MaskFiller(tiny_mlm)
    (ids, types), = filler.encode(["the [MASK] is red"])
    with torch.inference_mode():
        logits = filler.model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    expected = torch.softmax(logits[0, 2], -1).topk(3)
    assert [c["token_id"] for c in first[0]["candidates"]] == expected.indices.tolist()
    np.testing.assert_allclose([c["score"] for c in first[0]["candidates"]], expected.values.numpy(), atol=1e-5)
    for body, status in (({"inputs": "no mask"}, 422), ({"inputs": "[MASK]", "top_k": 0}, 422),
                         ({"inputs": "[MASK]", "top_k": "3"}, 422), ({"inputs": "[MASK]", "top_k": 51}, 422),
                         ({"inputs": ["[MASK]"] * 5}, 413), ({"inputs": " ".join(["[MASK]"] * 40)}, 422)):
        assert mlm_client.post("/fill-mask", json=body).status_code == status, body
    assert mlm_client.post("/predict", json={"inputs": "x"}).status_code == 404


def test_micro_batcher_groups_concurrent_requests() -> None:
    seen: list[int] = []

    def run_batch(items: list[int]) -> list[int]:
        seen.append(len(items))
        time.sleep(0.01)
        return [x * 10 for x in items]

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(run_batch, max_items=16, max_wait_s=0.05)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(20)))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(20)]  # each request gets its own answers
    assert sum(seen) == 40 and len(seen) < 20 and max(seen) <= 16 + 1


def test_concurrent_requests_share_forward_passes(tiny_ft: Path) -> None:
    clf = load_classifier(tiny_ft, batch_size=32)
    app = create_app(classifier_engine(clf), Limits(max_wait_ms=50))
    with TestClient(app) as c, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: c.post("/predict", json={"inputs": f"text number {i}"}).status_code,
                                 range(16)))
        health = c.get("/health").json()
    assert statuses == [200] * 16
    assert health["requests"] == 16 and health["texts"] == 16
    assert health["forward_passes"] < 16 and health["batches"] < 16


@pytest.mark.slow
def test_serve_process_batches_and_stops_on_sigterm(tiny_ft: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gristmill", "serve", str(tiny_ft), "--host", "127.0.0.1",
                             "--port", str(port), "--threads", str(THREADS), "--max-wait-ms", "50"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        texts = [json.loads(line)["text"] for line in (ROOT / "sample/task/dev.jsonl").read_text().splitlines()[:24]]
        with httpx.Client(base_url=base, timeout=30) as http, ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda t: http.post("/predict", json={"inputs": t}), texts))
            assert [a.status_code for a in answers] == [200] * 24
            assert http.post("/predict", json={"inputs": 1}).status_code == 422
            assert http.post("/predict", content=b"x" * 2_000_000,
                             headers={"content-type": "application/json"}).status_code == 413
            health = http.get("/health").json()
        assert health["requests"] == 24 and health["forward_passes"] < 24
        expected = load_classifier(tiny_ft).predict(texts)
        assert [a.json()["predictions"][0]["label"] for a in answers] == [e["label"] for e in expected]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "Shutting down" in output and "stopped: 24 requests" in output
