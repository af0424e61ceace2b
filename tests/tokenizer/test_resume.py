"""An interrupted pack resumes to exactly the output of an uninterrupted one; mixing tokenizers is refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gristmill.tokenizer import TokenDataset, TokenizerError, pack_corpus
from gristmill.tokenizer.pack import SequenceWriter
from tests.tokenizer.conftest import sample_texts, write_jsonl

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = pytest.mark.slow


def same_output(a: Path, b: Path) -> None:
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert ma["splits"] == mb["splits"]
    assert ma["source"]["documents"] == mb["source"]["documents"]
    for split in ("train", "val"):
        for shard in ma["splits"][split]["shards"]:
            for key in ("ids", "flags"):
                assert (a / shard[key]).read_bytes() == (b / shard[key]).read_bytes(), shard[key]
    leftovers = [p for p in a.rglob(".*") if ".tmp-" in p.name]
    assert not leftovers, leftovers


def test_sigkill_then_resume_equals_uninterrupted_pack(tokdir: Path, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": f"s{i}", "text": t} for i, t in enumerate(sample_texts(800))])
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gristmill", "tokenize", "--input", str(corpus), "--tokenizer", str(tokdir),
           "--out", str(killed), "--docs-per-unit", "80", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    done = killed / "_work" / "done"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if done.is_dir() and any(done.glob("*.json")):
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    finished = len(list(done.glob("*.json")))
    assert 1 <= finished < 10, "killed part-way through the 10 units"
    with pytest.raises(TokenizerError, match="unfinished pack"):
        TokenDataset(killed)
    with pytest.raises(TokenizerError, match="--resume"):
        pack_corpus(corpus, tokdir, killed, docs_per_unit=80)
    resumed = pack_corpus(corpus, tokdir, killed, docs_per_unit=80, resume=True)
    reference = pack_corpus(corpus, tokdir, tmp_path / "reference", docs_per_unit=80)
    same_output(killed, tmp_path / "reference")
    assert resumed["splits"]["train"]["sequences"] == len(TokenDataset(killed)) == reference["splits"]["train"]["sequences"]


class Crash(Exception):
    pass


def _crash_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Make the pack die mid-shard like a killed process: partial temporary files stay behind."""
    real_write = SequenceWriter._write
    calls = {"n": 0}

    def write(self: SequenceWriter, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] > writes:
            raise Crash
        real_write(self, *args)

    monkeypatch.setattr(SequenceWriter, "_write", write)
    monkeypatch.setattr(SequenceWriter, "abort", lambda self: None)


def test_crash_mid_shard_leaves_no_trace_after_resume(corpus: Path, tokdir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "t"
    with monkeypatch.context() as m:
        _crash_after(m, writes=3)
        with pytest.raises(Crash):
            pack_corpus(corpus, tokdir, out, seq_len=32, docs_per_unit=60)
    assert list(out.rglob(".*.tmp-*")), "the crash left a partial shard"
    assert not (out / "manifest.json").exists()
    pack_corpus(corpus, tokdir, out, seq_len=32, docs_per_unit=60, resume=True)
    pack_corpus(corpus, tokdir, tmp_path / "ref", seq_len=32, docs_per_unit=60)
    same_output(out, tmp_path / "ref")


def test_resume_refuses_another_tokenizer_or_other_settings(corpus: Path, tokdir: Path, other_tokdir: Path,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "t"
    with monkeypatch.context() as m:
        _crash_after(m, writes=2)
        with pytest.raises(Crash):
            pack_corpus(corpus, tokdir, out, seq_len=32, docs_per_unit=60)
    with pytest.raises(TokenizerError, match="another tokenizer"):
        pack_corpus(corpus, other_tokdir, out, seq_len=32, docs_per_unit=60, resume=True)
    with pytest.raises(TokenizerError, match="seq_len"):
        pack_corpus(corpus, tokdir, out, seq_len=64, docs_per_unit=60, resume=True)
    pack_corpus(corpus, tokdir, out, seq_len=32, docs_per_unit=60, resume=True)
    with pytest.raises(TokenizerError, match="another tokenizer"):
        pack_corpus(corpus, other_tokdir, out, seq_len=32, docs_per_unit=60, resume=True)
    assert len(TokenDataset(out)) > 0
    # --overwrite starts again with the other tokenizer.
    m2 = pack_corpus(corpus, other_tokdir, out, seq_len=32, docs_per_unit=60, overwrite=True)
    assert TokenDataset(out).vocab_size == m2["tokenizer"]["vocab_size"] == 1200


def test_reader_refuses_mixed_or_damaged_shards(corpus: Path, tokdir: Path, other_tokdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    pack_corpus(corpus, tokdir, out, seq_len=32, docs_per_unit=200)
    assert len(TokenDataset(out)) > 0

    mixed = tmp_path / "mixed"
    shutil.copytree(out, mixed)
    shutil.copy(other_tokdir / "tokenizer.json", mixed / "tokenizer" / "tokenizer.json")
    with pytest.raises(TokenizerError, match="mixes tokenizers"):
        TokenDataset(mixed)

    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    manifest = json.loads((foreign / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"][1]["tokenizer_hash"] = "0" * 64
    (foreign / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TokenizerError, match="another tokenizer"):
        TokenDataset(foreign)

    truncated = tmp_path / "truncated"
    shutil.copytree(out, truncated)
    shard = truncated / "train" / "00001.ids.bin"
    shard.write_bytes(shard.read_bytes()[:-64])
    with pytest.raises(TokenizerError, match="bytes"):
        TokenDataset(truncated)

    (truncated / "manifest.json").unlink()
    with pytest.raises(TokenizerError, match="unfinished pack"):
        TokenDataset(truncated)
    with pytest.raises(TokenizerError, match="no manifest"):
        TokenDataset(tmp_path)
