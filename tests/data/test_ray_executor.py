"""The Ray executor against a real Ray head on 127.0.0.1 with 2 CPUs, started and stopped by these tests.

What users rely on: ``gristmill run --executor ray`` gives exactly the local result (kept ids, rejected
ids with reasons, stats counts); a worker killed mid-shard is retried by Ray with nothing lost or
doubled; a killed run resumes on Ray to the uninterrupted result; and failures Ray gives up on
surface as errors instead of hanging.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from gristmill.data.executors import make_executor  # noqa: E402
from gristmill.data.readers.output import read_documents  # noqa: E402
from gristmill.data.recipe import load_builtin_steps, load_recipe  # noqa: E402

HELPERS = Path(__file__).parent / "ray"
sys.path.insert(0, str(HELPERS))  # Ray workers on this machine inherit the driver's sys.path

import ray_steps  # noqa: E402

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = pytest.mark.slow

# No usage statistics (they would be sent out). Auth mode explicit on every side: Ray otherwise turns
# token auth on when ~/.ray/auth_token exists, and a driver only reads the mode when ray is imported,
# so the in-process drivers here could not follow a token set later. The head lives for these tests only.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
N_DOCS = 1200
SHARD_SIZE = 150


@dataclass
class RayHead:
    address: str
    proc: subprocess.Popen
    temp_dir: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    # A short private temp dir: Ray's unix socket paths must stay under ~107 characters, and a private
    # one keeps this head apart from any other Ray on the machine.
    temp_dir = tempfile.mkdtemp(prefix="gmray", dir="/tmp")
    port = _free_port()
    ports = {flag: str(_free_port()) for flag in (
        "--ray-client-server-port", "--dashboard-port", "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")}
    # This interpreter's Ray, whether or not its ``ray`` script is on PATH.
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp_dir,
           *[x for kv in ports.items() for x in kv]]
    log = Path(temp_dir) / "head.log"
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": _pythonpath()}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 90
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc, temp_dir)
            pytest.fail(f"ray start --head failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    # Ray itself maps 127.0.0.1 to this machine's own address (head and drivers alike); it stays local.
    with pytest.MonkeyPatch.context() as mp:
        for key, value in RAY_ENV.items():
            mp.setenv(key, value)  # for the drivers these tests start in-process
        try:
            yield RayHead(f"127.0.0.1:{port}", proc, temp_dir)
        finally:
            _stop(proc, temp_dir)


def _stop(proc: subprocess.Popen, temp_dir: str) -> None:
    """Stop only the head this fixture started (``ray stop`` would kill every Ray on the machine)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # ray start --block stops the processes it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of our own session, if any
    shutil.rmtree(temp_dir, ignore_errors=True)


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (str(HELPERS), os.environ.get("PYTHONPATH", "")) if p)


# ------------------------------------------------------------------------------------ the executor itself


def test_map_yields_every_result_with_bounded_tasks_in_flight(ray_head: RayHead) -> None:
    pulled = 0

    def items() -> Iterator[int]:
        nonlocal pulled
        for i in range(12):
            pulled += 1
            yield i

    ex = make_executor("ray", workers=2, address=ray_head.address)
    try:
        assert ex.name == "ray" and ex.workers == 2
        results = []
        for value, pid in ex.map(ray_steps.double, items()):
            # Items are taken lazily: never more outstanding than the bound, counting this result.
            assert pulled - len(results) <= ex.max_in_flight + 1
            results.append(value)
            assert pid != os.getpid()
        assert sorted(results) == [2 * i for i in range(12)]
        assert list(ex.map(ray_steps.double, [])) == []
        # Any picklable callable, as with the local executor (corpus steps pass partials and objects).
        assert sorted(ex.map(functools.partial(ray_steps.add, 10), range(3))) == [10, 11, 12]
    finally:
        ex.close()
    assert not ray.is_initialized()


def test_task_exception_fails_fast_without_retry(ray_head: RayHead, tmp_path: Path) -> None:
    log = tmp_path / "attempts"
    ex = make_executor("ray", workers=2, address=ray_head.address)
    try:
        with pytest.raises(ValueError, match="item 3 is bad"):
            list(ex.map(ray_steps.fail_on_three, [(i, str(log)) for i in range(6)]))
    finally:
        ex.close()
    assert log.read_text() == "attempt\n"  # a bug is not rerun max_retries times


def test_worker_crashing_beyond_retries_is_an_error_naming_resume(ray_head: RayHead) -> None:
    ex = make_executor("ray", workers=0, address=ray_head.address, max_retries=1)
    try:
        assert ex.workers == 2  # workers=0: one task per CPU of the cluster
        with pytest.raises(RuntimeError, match="--resume"):
            list(ex.map(ray_steps.always_crash, [1]))
    finally:
        ex.close()


# ------------------------------------------------------------------------------------ whole runs


def _write_corpus(path: Path) -> None:
    """Exact and near duplicates, a recurring boilerplate line, short documents and one malformed line."""
    rng = random.Random(9)
    vocab = [f"w{i}" for i in range(400)]
    docs: list[str] = []
    for i in range(N_DOCS):
        if i % 10 == 3 and docs:
            text = docs[rng.randrange(len(docs))]  # exact duplicate
        elif i % 10 == 7 and docs:
            words = docs[rng.randrange(len(docs))].split()
            words[rng.randrange(len(words))] = "changed"
            text = " ".join(words)  # near duplicate
        elif i % 17 == 0:
            text = "too short"
        else:
            text = " ".join(rng.choice(vocab) for _ in range(rng.randint(40, 120)))
            if i % 5 == 0:  # boilerplate for line dedup
                text += "\nSubscribe to our newsletter to get the latest news and updates from us every week"
        docs.append(text)
    with gzip.open(path, "wt") as f:
        for i, text in enumerate(docs):
            f.write(json.dumps({"id": f"d{i:05d}", "text": text}) + "\n")
            if i == 500:
                f.write("{broken json\n")


def _dedup_steps() -> str:
    """The dedup steps that are registered, so equivalence covers the distributed corpus steps too."""
    registry = load_builtin_steps()
    names = ("exact_dedup", "minhash_dedup", "line_dedup")
    return "".join(f"  - {name}: {{}}\n" for name in names if name in registry)


def _recipe(path: Path, corpus: Path, out: Path, extra_steps: str = "") -> Path:
    path.write_text(
        f"input: {{paths: ['{corpus}'], shard_size: {SHARD_SIZE}}}\n"
        "batch_size: 50\n"
        "steps:\n"
        "  - length: {min_chars: 20}\n"
        f"{extra_steps}"
        f"{_dedup_steps()}"
        f"output: {{path: '{out}'}}\n"
    )
    return path


def _cli(recipe: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": _pythonpath()}
    return subprocess.Popen([sys.executable, "-m", "gristmill", "run", str(recipe), "--no-progress", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _run_ray(recipe: Path, address: str, *args: str) -> subprocess.CompletedProcess:
    proc = _cli(recipe, "--executor", "ray", "--address", address, "--workers", "2", *args)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _run_local(recipe: Path) -> None:
    load_recipe(recipe).run(workers=1, progress=False)


def _outcome(out: Path) -> tuple[list[str], list[tuple[str, str | None]]]:
    kept = sorted(d.id for d in read_documents(out / "kept"))
    rejected = sorted((d.id, d.reason) for d in read_documents(out / "rejected"))
    return kept, rejected


def _counts(out: Path) -> Any:
    """stats.json without timings, the output path and the provenance (command lines differ)."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if "seconds" not in k and k not in ("docs_per_s", "path", "provenance")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads((out / "stats.json").read_text()))


def _assert_same_result(ray_out: Path, local_out: Path) -> None:
    kept, rejected = _outcome(ray_out)
    assert (kept, rejected) == _outcome(local_out)
    ids = kept + [i for i, _ in rejected]
    assert len(ids) == len(set(ids)) == N_DOCS + 1, "a document was lost or written twice"
    assert _counts(ray_out) == _counts(local_out)


def test_ray_run_equals_local_run(ray_head: RayHead, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl.gz"
    _write_corpus(corpus)
    _run_local(_recipe(tmp_path / "local.yaml", corpus, tmp_path / "local"))
    res = _run_ray(_recipe(tmp_path / "ray.yaml", corpus, tmp_path / "ray"), ray_head.address)
    assert res.returncode == 3, res.stderr  # 3: the malformed line was quarantined, as locally
    _assert_same_result(tmp_path / "ray", tmp_path / "local")
    stats = json.loads((tmp_path / "ray" / "stats.json").read_text())
    assert stats["input"]["rejected"] == {"input:invalid_json": 1}
    assert stats["steps"][0]["rejected"]["length:min_chars"] > 0


def test_worker_killed_mid_shard_is_retried_without_loss_or_duplicates(ray_head: RayHead, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl.gz"
    _write_corpus(corpus)
    marker = tmp_path / "killed.pid"
    killer = f"  - ray_steps:KillWorkerOnce: {{shard: part-00002, marker: '{marker}'}}\n"
    res = _run_ray(_recipe(tmp_path / "ray.yaml", corpus, tmp_path / "ray", killer), ray_head.address)
    assert res.returncode == 3, res.stderr
    assert marker.exists(), "the worker was never killed: the test did not test anything"
    killed_pid = int(marker.read_text())
    done = json.loads((tmp_path / "ray" / "_work" / "stage1" / "done" / "00002.json").read_text())
    assert done["docs_in"] == SHARD_SIZE
    # The same recipe locally, the kill already spent, is the uninterrupted reference.
    _run_local(_recipe(tmp_path / "local.yaml", corpus, tmp_path / "local", killer))
    _assert_same_result(tmp_path / "ray", tmp_path / "local")
    with pytest.raises(ProcessLookupError):
        os.kill(killed_pid, 0)


def test_killed_ray_run_resumes_to_the_uninterrupted_result(ray_head: RayHead, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl.gz"
    _write_corpus(corpus)
    gate, reached = tmp_path / "gate", tmp_path / "reached"
    gate.touch()
    step = f"  - ray_steps:Gate: {{shard: part-00004, gate: '{gate}', reached: '{reached}'}}\n"
    recipe = _recipe(tmp_path / "ray.yaml", corpus, tmp_path / "ray", step)
    proc = _cli(recipe, "--executor", "ray", "--address", ray_head.address, "--workers", "2")
    deadline = time.monotonic() + 120
    while not reached.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the gated shard was never reached"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies; Ray drops its job
    proc.communicate()
    done = tmp_path / "ray" / "_work" / "stage1" / "done"
    n_done = len(list(done.iterdir()))
    n_shards = -(-(N_DOCS + 1) // SHARD_SIZE)
    assert 0 < n_done < n_shards
    assert not (tmp_path / "ray" / "stats.json").exists()

    gate.unlink()
    res = _run_ray(recipe, ray_head.address, "--resume")
    assert res.returncode == 3, res.stderr
    _run_local(_recipe(tmp_path / "local.yaml", corpus, tmp_path / "local", step))
    _assert_same_result(tmp_path / "ray", tmp_path / "local")
