"""Input and output on fsspec filesystems: the in-memory one (one process) and file:// URLs (several)."""

import gzip
import json
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step, read_documents, storage
from gristmill.data.run import RunError


def _records(n: int = 120) -> list[dict]:
    records = []
    for i in range(n):
        if i % 10 == 0:
            text = "this exact paragraph is repeated across the corpus and dedup must keep only one copy of it"
        elif i % 17 == 0:
            text = "short"
        else:
            text = f"document number {i} says something of its own about topic {i * 7 % 13} in several words"
        records.append({"id": f"d{i}", "text": text})
    return records


def _steps() -> list:
    return [build_step("length", {"min_chars": 20}), build_step("exact_dedup", {})]


def _write_inputs(root: str, records: list[dict]) -> None:
    """The same records as a gzipped JSONL file, a plain JSONL file and a Parquet file under ``root``."""
    third = len(records) // 3
    storage.makedirs(root)
    gz = b"".join(json.dumps(r).encode() + b"\n" for r in records[:third])
    plain = "".join(json.dumps(r) + "\n" for r in records[third : 2 * third]).encode()
    with storage.open_file(storage.join(root, "a.jsonl.gz"), "wb") as f:
        f.write(gzip.compress(gz))
    with storage.open_file(storage.join(root, "b.jsonl"), "wb") as f:
        f.write(plain)
    with storage.open_file(storage.join(root, "c.parquet"), "wb") as f:
        pq.write_table(pa.Table.from_pylist(records[2 * third :]), f)


def _outcome(out: str) -> tuple[list[str], dict[str, str]]:
    kept = sorted(d.id for d in read_documents(storage.join(out, "kept")))
    rejected = {d.id: d.reason for d in read_documents(storage.join(out, "rejected"))}
    return kept, rejected


@pytest.fixture
def memory_root():
    root = f"memory://gristmill-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    path = fs._strip_protocol(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_atomic_output_on_a_url(memory_root: str) -> None:
    target = storage.join(memory_root, "out", "part-00000.jsonl")
    with pytest.raises(RuntimeError), storage.atomic_output(target) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert not storage.exists(target)
    assert storage.listdir(storage.join(memory_root, "out")) == []
    storage.atomic_write(target, lambda f: f.write(b"whole\n"))
    assert storage.read_bytes(target) == b"whole\n"
    assert storage.listdir(storage.join(memory_root, "out")) == [target]


def test_run_reads_and_writes_an_fsspec_filesystem(memory_root: str, tmp_path: Path) -> None:
    records = _records()
    _write_inputs(storage.join(memory_root, "in"), records)
    local_in = tmp_path / "in"
    _write_inputs(str(local_in), records)

    remote = Pipeline(InputSpec(paths=[storage.join(memory_root, "in", "*")], shard_size=25), _steps(),
                      OutputSpec(storage.join(memory_root, "out"), work_dir=str(tmp_path / "work")))
    result = remote.run(workers=1, progress=False)
    local = Pipeline(InputSpec(paths=[str(local_in / "*")], shard_size=25), _steps(), OutputSpec(str(tmp_path / "out")))
    local.run(workers=1, progress=False)

    kept, rejected = _outcome(storage.join(memory_root, "out"))
    assert result.docs_in == len(records) == len(kept) + len(rejected)
    assert (kept, rejected) == _outcome(str(tmp_path / "out"))
    assert rejected["d10"].startswith("exact_dedup:") and rejected["d17"] == "length:min_chars"
    stats = json.loads(storage.read_bytes(storage.join(memory_root, "out", "stats.json")))
    assert stats["totals"] == {**stats["totals"], "docs_in": len(records), "kept": len(kept)}
    # the resume state stayed local; nothing but the results went to the remote side
    assert {storage.name(p) for p in storage.listdir(storage.join(memory_root, "out"))} == {"kept", "rejected", "stats.json", ".gristmill"}
    assert (tmp_path / "work" / "recipe.json").is_file()

    with pytest.raises(RunError, match="already exists"):
        remote.run(workers=1, progress=False)
    again = remote.run(workers=1, resume=True, progress=False)
    assert (again.kept, again.rejected) == (result.kept, result.rejected)


def test_stale_work_state_does_not_skip_a_new_run(memory_root: str, tmp_path: Path) -> None:
    records = _records(60)
    _write_inputs(storage.join(memory_root, "in"), records)
    out = storage.join(memory_root, "out")
    pipe = Pipeline(InputSpec(paths=[storage.join(memory_root, "in", "*")], shard_size=25), _steps(),
                    OutputSpec(out, work_dir=str(tmp_path / "work")))
    pipe.run(workers=1, progress=False)
    storage.remove_tree(out)  # the user deleted the results but not the local state
    result = pipe.run(workers=1, progress=False)
    kept, rejected = _outcome(out)
    assert result.docs_in == len(records) == len(kept) + len(rejected)


def test_url_output_with_worker_processes_and_resume(tmp_path: Path) -> None:
    """file:// URLs take the fsspec path in every worker process, so any plain-path shortcut would show."""
    records = _records(200)
    _write_inputs(str(tmp_path / "in"), records)
    in_url = f"file://{tmp_path / 'in'}"
    out_url = f"file://{tmp_path / 'out'}"
    pipe = Pipeline(InputSpec(paths=[f"{in_url}/*"], shard_size=20), _steps(), OutputSpec(out_url))
    result = pipe.run(workers=2, progress=False)
    kept, rejected = _outcome(out_url)
    assert result.docs_in == len(records) == len(kept) + len(rejected)
    assert len(set(kept)) == len(kept)
    assert rejected["d20"].startswith("exact_dedup:")
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.name != storage.MARKER], "no temporary files are left behind"
    # resuming a complete run changes nothing
    again = pipe.run(workers=2, resume=True, progress=False)
    assert (again.kept, again.rejected) == (result.kept, result.rejected)
    assert _outcome(out_url) == (kept, rejected)


def test_missing_remote_input_is_reported_not_raised(memory_root: str, tmp_path: Path) -> None:
    pipe = Pipeline(InputSpec(paths=[storage.join(memory_root, "nothing.jsonl")]), [build_step("noop", {})],
                    OutputSpec(str(tmp_path / "out")))
    result = pipe.run(workers=1, progress=False)
    assert result.docs_in == 0
    assert [e.message for e in result.input_errors] == ["no such file or directory"]


def test_cli_run_with_url_output_and_work_dir(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gristmill.cli import app

    records = _records(50)
    _write_inputs(str(tmp_path / "in"), records)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("input: {paths: [unused]}\nsteps: [length, exact_dedup]\noutput: {path: unused}\n")
    out_url = f"file://{tmp_path / 'out'}"
    args = ["run", str(recipe), "--input", f"file://{tmp_path / 'in'}/*", "--output", out_url,
            "--work-dir", str(tmp_path / "work"), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{out_url}/kept" in result.output
    kept, rejected = _outcome(out_url)
    assert len(kept) + len(rejected) == len(records)
    assert (tmp_path / "work" / "errors.json").is_file() and not (tmp_path / "out" / "_work").exists()
