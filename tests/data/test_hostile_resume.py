"""Principles 4 and 8: a resume never mixes changed input into a run; workers never outlive a killed
parent; files half-written by a killed process are cleaned on the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gristmill.data import storage
from gristmill.data.fingerprint import fingerprint
from tests.data.hostile import GOOD, invoke, one_line_error, write_jsonl, write_recipe

HERE = Path(__file__).parent


def _slow_run(recipe: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "gristmill", "run", str(recipe), "--no-progress", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_done(out: Path, proc: subprocess.Popen, n: int = 1) -> None:
    done = out / "_work" / "stage1" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and not (done.exists() and len(list(done.iterdir())) >= n):
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"


# ---------------------------------------------------------------- principle 4: changed input on resume


@pytest.mark.slow
def test_resume_after_kill_refuses_changed_input_and_names_the_file(tmp_path: Path) -> None:
    """The issue's example: 1,200 of 3,356 documents lost and 849 ids both kept and rejected, exit 0."""
    corpus = write_jsonl(tmp_path / "in" / "a.jsonl", [], n_good=600)
    other = write_jsonl(tmp_path / "in" / "b.jsonl", [], n_good=50)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", f"{tmp_path / 'in'}/*.jsonl", out,
                          steps="  - step_fixtures:Sleepy: {seconds: 0.004}\n", extra=", shard_size: 50")
    proc = _slow_run(recipe)
    _wait_for_done(out, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    original = corpus.read_bytes()
    corpus.write_bytes(original.replace(b"ordinary", b"ORDINARY"))  # same name, same size, other content
    resumed = _slow_run(recipe, "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 2, err
    assert f"input {corpus} changed since the run started (same size, other content)" in " ".join(err.split())
    assert "Traceback" not in err
    corpus.write_bytes(original)  # put it back: the resume goes through and loses nothing
    resumed = _slow_run(recipe, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["totals"]["docs_in"] == 650 == stats["totals"]["kept"] + stats["totals"]["rejected"]
    assert other.exists()


@pytest.mark.parametrize("change", ["longer", "shorter", "new file", "removed file", "text folder"])
def test_resume_refuses_each_kind_of_input_change(tmp_path: Path, change: str) -> None:
    folder = tmp_path / "in"
    a = write_jsonl(folder / "a.jsonl", [], n_good=30)
    b = write_jsonl(folder / "b.jsonl", [], n_good=30)
    texts = folder / "texts"
    texts.mkdir()
    (texts / "1.txt").write_text(GOOD)
    pattern = str(texts) if change == "text folder" else f"{folder}/*.jsonl"
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", pattern, out)
    code, output = invoke("run", recipe, "--no-progress")
    assert code == 0, output
    if change == "longer":
        a.write_text(a.read_text() + json.dumps({"id": "late", "text": GOOD}) + "\n")
    elif change == "shorter":
        a.write_text("".join(a.read_text().splitlines(keepends=True)[:-1]))
    elif change == "new file":
        write_jsonl(folder / "c.jsonl", [], n_good=3)
    elif change == "removed file":
        b.unlink()
    else:
        (texts / "2.txt").write_text(GOOD)
    code, output = invoke("run", recipe, "--no-progress", "--resume")
    line = one_line_error(output)
    assert code == 2 and "since the run started" in line and "--overwrite" in line
    named = {"longer": a, "shorter": a, "new file": folder / "c.jsonl", "removed file": b, "text folder": texts}[change]
    assert f"input {named} " in line


@pytest.mark.parametrize("where", [0.0, 3 / 7, 1.0])
def test_fingerprint_of_a_large_file_sees_a_same_size_change_in_a_sampled_block(tmp_path: Path, where: float) -> None:
    """Large files are fingerprinted by size and eight 64 KiB blocks spread evenly (start, sevenths, end)."""
    from gristmill.data.fingerprint import BLOCK

    big = tmp_path / "big.bin"
    data = bytearray(os.urandom(3 << 20))
    big.write_bytes(bytes(data))
    before = fingerprint(str(big))
    at = int(where * (len(data) - BLOCK)) + 100
    data[at: at + 20] = bytes(b ^ 0xFF for b in data[at: at + 20])
    big.write_bytes(bytes(data))
    assert fingerprint(str(big)) != before and fingerprint(str(big))[0] == before[0]


def test_tokenize_resume_refuses_changed_input(tmp_path: Path, tokdir_small: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [], n_good=40)
    out = tmp_path / "tok"
    code, output = invoke("tokenize", "-i", corpus, "-t", tokdir_small, "-o", out, "--seq-len", "16", "--no-progress")
    assert code == 0, output
    (out / "manifest.json").unlink()  # as if killed before the end
    corpus.write_bytes(corpus.read_bytes().replace(b"ordinary", b"ORDINARY"))
    code, output = invoke("tokenize", "-i", corpus, "-t", tokdir_small, "-o", out, "--seq-len", "16", "--no-progress",
                          "--resume")
    assert code == 2 and f"input {corpus} changed since the pack started" in one_line_error(output)


# ---------------------------------------------------------------- principle 8: no orphans, no leftovers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the workers")
def test_workers_die_when_the_run_is_killed(tmp_path: Path) -> None:
    """kill -9 of the main process left its workers alive forever (reparented, 130-300 MB each)."""
    write_jsonl(tmp_path / "in" / "a.jsonl", [], n_good=2000)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", f"{tmp_path / 'in'}/*.jsonl", out,
                          steps="  - step_fixtures:Sleepy: {seconds: 0.01}\n", extra=", shard_size: 50")
    proc = _slow_run(recipe, "--workers", "2")
    _wait_for_done(out, proc)
    workers = _descendants(proc.pid)  # the fork server and the workers it forked
    assert len(workers) >= 3
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID` does
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def _descendants(pid: int) -> list[int]:
    parents = {int(p.name): _parent(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().split(")")[-1].split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return -1


def test_watchdog_ends_a_worker_whose_parent_is_gone(tmp_path: Path) -> None:
    """The fallback where the parent-death signal is not available: a thread watching the parent id."""
    script = textwrap.dedent(f"""
        import os, sys, time
        from gristmill.data.executors import local
        pid = os.fork()
        if pid == 0:  # the 'parent' of the worker
            if os.fork() == 0:  # the worker: watch our parent, then outlive it
                local._watch_parent.__defaults__ = (0.05,)
                import threading
                threading.Thread(target=local._watch_parent, args=(os.getppid(),), daemon=True).start()
                open({str(tmp_path / 'worker.pid')!r}, "w").write(str(os.getpid()))
                time.sleep(60)
                os._exit(0)
            time.sleep(1.0)
            os._exit(0)  # the parent dies; the worker must follow
        os.waitpid(pid, 0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    worker = int((tmp_path / "worker.pid").read_text())
    deadline = time.time() + 20
    while time.time() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker)


def test_stale_temporaries_are_cleaned_on_resume(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "in" / "a.jsonl", [], n_good=20)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", str(corpus), out)
    code, output = invoke("run", recipe, "--no-progress")
    assert code == 0, output
    stale = [out / "kept" / ".part-00003.parquet.tmp-99999", out / "rejected" / ".s1-part-00001.parquet.tmp-4242",
             out / "_work" / "stage1" / "done" / ".00001.json.tmp-77"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    code, output = invoke("run", recipe, "--no-progress", "--resume")
    assert code == 0, output
    assert not any(p.exists() for p in stale)


def test_pretrain_resume_cleans_stale_checkpoint_folders(tmp_path: Path) -> None:
    """.step-N.tmp-PID folders of a killed pretraining are removed on the next start."""
    from gristmill.model.config import ModelConfig
    from gristmill.train.pretrain import PretrainConfig, prepare_run_dir

    run = tmp_path / "run"
    prepare_run_dir(PretrainConfig(data=str(tmp_path / "tokens"), out=str(run)), ModelConfig(vocab_size=100), None)
    stale = run / "checkpoints" / ".step-40.tmp-12345"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    keep = run / "checkpoints" / "step-20"
    keep.mkdir()
    prepare_run_dir(PretrainConfig(data=str(tmp_path / "tokens"), out=str(run), resume=True),
                    ModelConfig(vocab_size=100), None)
    assert not stale.exists() and keep.exists() and storage.read_marker(run)["kind"] == "pretrain"


def test_resume_refuses_a_changed_url_input(tmp_path: Path) -> None:
    """URL inputs are fingerprinted from their metadata (ETag, md5 or modification time) in one request."""
    import fsspec

    from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step
    from gristmill.data.run import RunError

    fs = fsspec.filesystem("memory")
    line = json.dumps({"id": "u1", "text": GOOD}) + "\n"
    fs.pipe("/hostile-resume/in.jsonl", line.encode())
    url = "memory://hostile-resume/in.jsonl"
    pipe = Pipeline(InputSpec(paths=[url]), [build_step("noop", {})], OutputSpec(str(tmp_path / "out")))
    assert pipe.run(progress=False).kept == 1
    fs.pipe("/hostile-resume/in.jsonl", line.replace("ordinary", "ORDINARY").encode())
    try:
        with pytest.raises(RunError, match=f"input {url} changed since the run started"):
            pipe.run(resume=True, progress=False)
    finally:
        fs.rm("/hostile-resume", recursive=True)
