"""Every kind of malformed input is quarantined with file and line, and nothing is lost."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step
from gristmill.data.readers.output import read_documents

GOOD = "A perfectly ordinary document with enough words to be kept by the length filter."


@pytest.fixture()
def bad_corpus(tmp_path: Path) -> tuple[Path, int]:
    """A folder with every kind of bad input; returns (folder, number of input records)."""
    d = tmp_path / "in"
    d.mkdir()
    lines = [
        json.dumps({"id": "good1", "text": GOOD}).encode(),
        b'{"id": "broken", "text": "no closing brace"',                        # unparsable JSON
        b'{"id": "latin1", "text": "caf\xe9 au lait"}',                         # invalid UTF-8
        json.dumps({"id": "notext", "body": "wrong field"}).encode(),          # missing text field
        json.dumps({"id": "empty", "text": "   "}).encode(),                   # empty document
        json.dumps({"id": "huge", "text": "x" * (20 * 1024 * 1024)}).encode(),  # 20 MB document
        json.dumps(["not", "an", "object"]).encode(),                           # not an object
        json.dumps({"id": "good2", "text": GOOD + " Second."}).encode(),
    ]
    (d / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    full = gzip.compress(b"".join(json.dumps({"id": f"t{i}", "text": f"{GOOD} {i}"}).encode() + b"\n" for i in range(50)))
    (d / "truncated.jsonl.gz").write_bytes(full[: len(full) // 2])                 # truncated .gz
    (d / "garbage.jsonl.gz").write_bytes(b"this is not gzip data at all\n")        # unreadable file
    with gzip.open(d / "truncated.jsonl.gz", "rb") as f:
        readable = 0
        try:
            for _ in f:
                readable += 1
        except EOFError:
            pass
    return d, len(lines) + readable


def _pipeline(folder: Path, out: Path) -> Pipeline:
    spec = InputSpec(paths=[str(folder / "*.jsonl*")], max_doc_bytes=10_000_000)
    return Pipeline(spec, [build_step("length", {"min_chars": 20})], OutputSpec(str(out)))


def test_every_document_kept_or_rejected(bad_corpus: tuple[Path, int], tmp_path: Path) -> None:
    folder, n_records = bad_corpus
    result = _pipeline(folder, tmp_path / "out").run(progress=False)
    kept = list(read_documents(tmp_path / "out" / "kept"))
    rejected = list(read_documents(tmp_path / "out" / "rejected"))
    assert result.docs_in == n_records == len(kept) + len(rejected)
    assert len({d.id for d in kept + rejected}) == len(kept) + len(rejected)
    reasons = {d.id: d.reason for d in rejected}
    assert reasons["notext"] == "input:missing_text"
    assert reasons["empty"] == "input:empty_text"
    by_reason = {d.reason for d in rejected}
    assert {"input:invalid_json", "input:invalid_utf8", "input:too_large"} <= by_reason
    for d in rejected:
        if d.reason.startswith("input:") and d.reason != "input:missing_text":
            assert "mixed.jsonl:" in d.detail or "truncated.jsonl.gz:" in d.detail, d.detail
    latin = next(d for d in rejected if d.reason == "input:invalid_utf8")
    assert latin.detail.startswith(str(folder / "mixed.jsonl") + ":3:")
    errors = " ".join(str(e) for e in result.input_errors)
    assert "garbage.jsonl.gz" in errors and "truncated.jsonl.gz" in errors
    assert result.exit_code == 3
    assert {"good1", "good2"} <= {d.id for d in kept}


def test_cli_reports_without_traceback(bad_corpus: tuple[Path, int], tmp_path: Path) -> None:
    folder, _ = bad_corpus
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"input: {{paths: ['{folder}/*.jsonl*']}}\nsteps:\n  - length: {{min_chars: 20}}\noutput: {{path: {tmp_path / 'o'}}}\n")
    proc = subprocess.run([sys.executable, "-m", "gristmill", "run", str(recipe), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "garbage.jsonl.gz" in proc.stderr and "quarantined" in proc.stderr
    assert (tmp_path / "o" / "stats.json").exists()
