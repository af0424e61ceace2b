"""Benchmark: gristmill inference (torch, ONNX fp32, ONNX int8) against ``transformers.pipeline``, and a load test.

All on the same fine-tuned weights, in one run:

1. the model: ``--ft FT`` as given; otherwise one is built in ``--workdir`` (kept for reruns): a WordPiece
   tokenizer trained on the task's training texts, then ``gristmill.train.finetune.finetune`` of a ``--size``
   encoder on the task (from ``--run RUN`` when given, else from scratch, ``--steps`` optimiser steps);
2. exports: ``export_hf_classifier`` (``BertForSequenceClassification``, for the peer) and ``export_onnx``
   with int8 (onnxruntime dynamic quantization);
3. for each system, on the task's test texts: throughput at batch 32 (texts/s, full probabilities out),
   latency p50/p95 of one text per call, and accuracy. Systems: ``pipeline("text-classification")`` on the
   HF export (the peer), gristmill torch, torch int8 (in-process dynamic quantization), ONNX fp32, ONNX
   int8. Every system gets the same number of CPU threads (``--threads``);
4. a bounded load test of ``gristmill serve`` on 127.0.0.1 with gristmill's fastest backend: ``--clients``
   concurrent clients send ``--requests`` single-text requests (time cap ``--time-cap``): requests/s,
   p50/p99 latency, errors, forward passes; then a run of malformed requests that must all get a 4xx;
   then SIGTERM, which must stop the server with status 0.

    python benchmarks/inference.py [--ft FT] [--task-dir ../shared/data/tasks/fortunes] [--workdir DIR]

Nothing touches the network (``HF_HUB_OFFLINE``), and the server binds 127.0.0.1 only.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_TASK = ROOT.parent / "shared" / "data" / "tasks" / "fortunes"
SAMPLE_TASK = ROOT / "sample" / "task"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def read_split(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], [str(r["label"]) for r in rows]


# --------------------------------------------------------------------------------------------- the model


def build_model(task_dir: Path, work: Path, size: str, steps: int, run: Path | None, max_length: int) -> Path:
    """Fine-tune a classifier for the benchmark (skipped when ``work/ft`` already exists)."""
    from gristmill.model.config import ModelConfig
    from gristmill.tokenizer.tokdir import load_tokenizer
    from gristmill.tokenizer.train import train_tokenizer
    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    ft = work / "ft"
    if (ft / "model.safetensors").exists():
        print(f"using the model built earlier: {ft}", flush=True)
        return ft
    base = run
    if base is None:
        base = work / "run"
        if not (base / "tokenizer" / "tokenizer.json").exists():
            train_tokenizer(task_dir / "train.jsonl", base / "tokenizer", vocab_size=8000, show_progress=False,
                            model_max_length=max_length, overwrite=True)
        vocab = load_tokenizer(base / "tokenizer").get_vocab_size()
        ModelConfig.named(size, vocab, max_position=512).to_json(base / "config.json")
    data = load_task(task_dir / "train.jsonl", task_dir / "dev.jsonl", task_dir / "test.jsonl", max_length=max_length)
    cfg = FineTuneConfig(lr=5e-4 if run is None else 1e-4, batch_size=32, min_steps=steps, min_epochs=1,
                         patience=3, eval_every=max(50, steps // 4))
    import torch

    # Training is not what is measured; one thread runs it faster than two on a shared, busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"fine-tuning a {size} classifier ({'from ' + str(run) if run else 'from scratch'}) on {task_dir} ...",
          flush=True)
    result = finetune(base, data, cfg, out=ft, from_scratch=run is None, seed=0, overwrite=True,
                      log=lambda m: print("  " + m, flush=True))
    print(f"  done in {time.perf_counter() - t0:.0f}s, test accuracy {result.metrics['test']['accuracy']:.4f}",
          flush=True)
    torch.set_num_threads(threads)
    return ft


# ------------------------------------------------------------------------------------------ the systems


def time_throughput(predict: Any, texts: list[str], repeats: int = 1) -> tuple[float, Any]:
    predict(texts[:32])  # warm-up: first-call allocations and lazy initialisation
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = predict(texts)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best, out


def time_latency(predict_one: Any, texts: list[str], n: int) -> list[float]:
    for t in texts[:5]:
        predict_one(t)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        predict_one(texts[i % len(texts)])
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_systems(ft: Path, hf_dir: Path, onnx_dir: Path, texts: list[str], gold: list[str], threads: int,
                  latency_n: int, batch_size: int) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

    from gristmill.serve.loading import load_classifier

    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []

    bert = BertForSequenceClassification.from_pretrained(hf_dir, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    pipe = pipeline("text-classification", model=bert, tokenizer=tokenizer, device="cpu")

    def hf_batch(batch: list[str]) -> list[str]:
        out = pipe(batch, batch_size=batch_size, truncation=True, top_k=None)
        return [max(scores, key=lambda s: s["score"])["label"] for scores in out]

    systems: list[tuple[str, Any, Any]] = [
        ("transformers pipeline (peer)", hf_batch, lambda t: pipe(t, truncation=True, top_k=None))]
    for name, backend, quantize in (("gristmill torch", "torch", "none"), ("gristmill torch int8", "torch", "int8"),
                                    ("gristmill onnx fp32", "onnx", "none"), ("gristmill onnx int8", "onnx", "int8")):
        clf = load_classifier(onnx_dir if backend == "onnx" else ft, backend, quantize, batch_size, threads)
        systems.append((name, lambda b, c=clf: [p["label"] for p in c.predict(b)], lambda t, c=clf: c.predict([t])))
    for name, batch_fn, one_fn in systems:
        print(f"  {name}: throughput ...", end="", flush=True)
        rate, labels = time_throughput(batch_fn, texts)
        print(" latency ...", end="", flush=True)
        lat = time_latency(one_fn, texts, latency_n)
        acc = float(np.mean([p == g for p, g in zip(labels, gold, strict=True)]))
        rows.append({"system": name, "texts_per_s": rate, "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                     "accuracy": acc})
        print(f" {rate:,.0f} texts/s, p50 {rows[-1]['p50_ms']:.1f} ms, accuracy {acc:.4f}", flush=True)
    return rows


# ------------------------------------------------------------------------------------------- load test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MALFORMED: list[tuple[str, bytes, str]] = [
    ("POST", b'{"inputs": 5}', "application/json"),
    ("POST", b'{"inputs": null}', "application/json"),
    ("POST", b'{"inputs": []}', "application/json"),
    ("POST", b'{"inputs": ["ok", 3]}', "application/json"),
    ("POST", b'{"inputs": "x", "model": "/etc/passwd"}', "application/json"),
    ("POST", b'{"text": "wrong field"}', "application/json"),
    ("POST", b"[1, 2, 3]", "application/json"),
    ("POST", b"{not json", "application/json"),
    ("POST", b"", "application/json"),
    ("POST", b'{"inputs": "\xff\xfe"}', "application/json"),
    ("POST", b"inputs=hello", "application/x-www-form-urlencoded"),
    ("POST", json.dumps({"inputs": ["t"] * 65}).encode(), "application/json"),
    ("POST", json.dumps({"inputs": "y" * 1_100_000}).encode(), "application/json"),
    ("GET", b"", "application/json"),
]


async def load_test(base: str, texts: list[str], clients: int, requests: int, time_cap: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    deadline = time.perf_counter() + time_cap

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                r = await http.post("/predict", json={"inputs": texts[i % len(texts)]})
                if r.status_code != 200:
                    errors.append(f"status {r.status_code}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            latencies.append((time.perf_counter() - t0) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - t0
        health = (await http.get("/health")).json()
        statuses = []
        for _ in range(10):
            for method, body, ctype in MALFORMED:
                try:
                    r = await http.request(method, "/predict", content=body if method == "POST" else None,
                                           headers={"content-type": ctype})
                    statuses.append(r.status_code)
                except httpx.HTTPError:
                    statuses.append(0)  # no answer at all: counted as a failure below
    return {"requests": len(latencies), "seconds": seconds, "req_per_s": len(latencies) / seconds,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99), "errors": len(errors),
            "error_kinds": sorted(set(errors)), "forward_passes": health["forward_passes"],
            "batches": health["batches"], "largest_batch": health["largest_batch"],
            "malformed": len(statuses), "malformed_4xx": sum(400 <= s < 500 for s in statuses),
            "malformed_statuses": sorted(set(statuses)), "capped": len(latencies) < requests}


def serve_and_load(model: Path, backend: str, quantize: str, threads: int, texts: list[str], clients: int,
                   requests: int, time_cap: float, log_path: Path, extra: list[str]) -> dict[str, Any]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "gristmill", "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--backend", backend, "--quantize", quantize, "--threads", str(threads), "--log-level", "warning", *extra]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"gristmill serve exited:\n{log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("gristmill serve did not start within 120 s")
                time.sleep(0.2)
            result = asyncio.run(load_test(base, texts, clients, requests, time_cap))
            proc.send_signal(signal.SIGTERM)
            result["exit_status_after_sigterm"] = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result["command"] = " ".join(cmd[1:])
    return result


# ------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ft", type=Path, help="An existing FT folder (default: build one in --workdir).")
    parser.add_argument("--run", type=Path, help="Pretrained RUN to fine-tune from (default: from scratch).")
    parser.add_argument("--task-dir", type=Path, default=SHARED_TASK if SHARED_TASK.exists() else SAMPLE_TASK)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gristmill-bench-inference"))
    parser.add_argument("--size", default="mini", help="Model size when building (tiny, mini, small, ...).")
    parser.add_argument("--steps", type=int, default=400, help="Fine-tuning steps when building.")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="Test texts for throughput (default: all).")
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--time-cap", type=float, default=180.0)
    parser.add_argument("--unbatched", action="store_true", help="Also load-test with micro-batching off.")
    parser.add_argument("--serve-backend", help="torch, torch-int8, onnx or onnx-int8 (default: the fastest).")
    parser.add_argument("--load-only", action="store_true", help="Skip the single-process comparison.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    ft = args.ft or build_model(args.task_dir, args.workdir, args.size, args.steps, args.run, args.max_length)
    from gristmill.serve.onnx import export_hf_classifier, export_onnx

    hf_dir, onnx_dir = args.workdir / "hf", args.workdir / "onnx"
    print("exporting (transformers folder, ONNX fp32 + int8) ...", flush=True)
    export_hf_classifier(ft, hf_dir)
    report = export_onnx(ft, onnx_dir, quantize="int8", eval_file=args.task_dir / "test.jsonl", torch_int8=True,
                         threads=args.threads)
    texts, gold = read_split(args.task_dir / "test.jsonl")
    if args.limit:
        texts, gold = texts[: args.limit], gold[: args.limit]
    config = json.loads((ft / "config.json").read_text())
    task = json.loads((ft / "task.json").read_text())
    print(f"model: {config.get('name') or ''} {config['num_layers']} layers x {config['hidden_size']}, "
          f"{len(task['labels'])} labels, max_length {task['max_length']}; {len(texts)} test texts; "
          f"{args.threads} threads", flush=True)
    rows: list[dict[str, Any]] = []
    if not args.load_only:
        rows = bench_systems(ft, hf_dir, onnx_dir, texts, gold, args.threads, args.latency_n, args.batch_size)
        report_systems(rows, report)
    serve_choice = args.serve_backend or (max(rows[1:], key=lambda r: r["texts_per_s"])["system"] if rows else "onnx-int8")
    backend = "onnx" if "onnx" in serve_choice else "torch"
    quantize = "int8" if "int8" in serve_choice else "none"
    serve_model = onnx_dir if backend == "onnx" else ft
    loads = {}
    variants = [("micro-batched", [])] + ([("unbatched", ["--max-batch", "1", "--max-wait-ms", "0"])]
                                          if args.unbatched else [])
    for label, extra in variants:
        print(f"\nload test ({label}): gristmill serve --backend {backend} --quantize {quantize}, {args.clients} "
              f"clients, {args.requests} requests, cap {args.time_cap:.0f}s ...", flush=True)
        load = serve_and_load(serve_model, backend, quantize, args.threads, texts, args.clients, args.requests,
                              args.time_cap, args.workdir / f"serve-{label}.log", extra)
        loads[label] = load
        print(f"  {load['requests']} requests in {load['seconds']:.1f}s: {load['req_per_s']:.1f} req/s, "
              f"p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms, errors {load['errors']} "
              f"{load['error_kinds']}, {load['forward_passes']} forward passes in {load['batches']} micro-batches "
              f"(largest {load['largest_batch']}){', TIME CAP HIT' if load['capped'] else ''}")
        print(f"  malformed: {load['malformed_4xx']}/{load['malformed']} answered 4xx (statuses "
              f"{load['malformed_statuses']}); exit status after SIGTERM: {load['exit_status_after_sigterm']}")
    if args.json:
        args.json.write_text(json.dumps({"systems": rows, "export": report, "load": loads, "ft": str(ft),
                                         "threads": args.threads, "texts": len(texts)}, indent=2) + "\n")


def report_systems(rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
    peer = rows[0]
    best = max(rows[1:], key=lambda r: r["texts_per_s"])
    print("\n| system | texts/s (batch 32) | p50 ms (batch 1) | p95 ms (batch 1) | accuracy | x peer |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['system']} | {r['texts_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['accuracy']:.4f} | {r['texts_per_s'] / peer['texts_per_s']:.2f} |")
    print(f"\ngristmill's best ({best['system']}) / transformers pipeline: "
          f"{best['texts_per_s'] / peer['texts_per_s']:.2f}x throughput, accuracy {best['accuracy']:.4f} vs "
          f"{peer['accuracy']:.4f} ({(best['accuracy'] - peer['accuracy']) * 100:+.2f} points)")
    print(f"export parity with torch (test set): {json.dumps(report.get('parity'))}")


if __name__ == "__main__":
    main()
