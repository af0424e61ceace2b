"""Principles 1, 5 and 7 (data side): never delete what gristmill did not create, never take an
unfinished output for a finished one, one writer per output, and one-line errors for bad output paths."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gristmill.data import storage
from gristmill.errors import describe_os_error
from tests.data.hostile import GOOD, invoke, one_line_error, write_jsonl, write_recipe


def _corpus(folder: Path, n: int = 20) -> Path:
    return write_jsonl(folder / "docs.jsonl", [], n_good=n)


def _run_ok(tmp: Path, corpus: Path, out: Path, *extra: str) -> None:
    code, output = invoke("run", write_recipe(tmp / "ok.yaml", str(corpus), out), "--no-progress", *extra)
    assert code == 0, output


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- principle 1: deletion


def test_run_output_that_is_the_input_folder_is_refused(tmp_path: Path) -> None:
    """The issue's example: --input 'inf/*.jsonl' -o inf --overwrite deleted its own input."""
    inf = tmp_path / "inf"
    _corpus(inf)
    before = _snapshot(inf)
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", "x", "unused"), "--input", f"{inf}/*.jsonl",
                          "-o", inf, "--overwrite", "--no-progress")
    assert code == 2 and "contains the input" in one_line_error(output)
    assert _snapshot(inf) == before


def test_run_output_inside_a_text_folder_input_is_refused(tmp_path: Path) -> None:
    """A folder of text files is read recursively: an output inside it would be read back as input."""
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text(GOOD)
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(texts), texts / "out"), "--no-progress")
    assert code == 2 and "inside the input folder" in one_line_error(output)
    assert sorted(p.name for p in texts.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("how", ["same", "parent", "symlink", "dotdot"])
def test_run_output_equal_to_or_containing_an_input_is_refused(tmp_path: Path, how: str) -> None:
    corpus = _corpus(tmp_path / "data" / "in")
    out = {"same": corpus.parent, "parent": tmp_path / "data", "symlink": tmp_path / "link",
           "dotdot": tmp_path / "data" / "in" / ".." / "in"}[how]
    if how == "symlink":
        out.symlink_to(corpus.parent)
    before = _snapshot(tmp_path / "data")
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), out), "--overwrite", "--no-progress")
    assert code == 2 and "the input" in one_line_error(output)
    assert _snapshot(tmp_path / "data") == before


def test_overwrite_of_the_current_folder_or_a_user_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    """-o . --overwrite wiped the current folder; a folder gristmill did not make is never deleted."""
    corpus = _corpus(tmp_path / "in")
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "thesis.tex").write_text("years of work")
    (home / "notes" / "a.txt").write_text("more")
    before = _snapshot(home)
    monkeypatch.chdir(home)
    for out in (".", str(home), "notes"):
        code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), out), "--overwrite", "--no-progress")
        assert code == 2 and "not made by gristmill" in one_line_error(output)
    assert _snapshot(home) == before


def test_overwrite_replaces_only_an_output_of_the_same_kind(tmp_path: Path, tokdir_small: Path) -> None:
    corpus = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    _run_ok(tmp_path, corpus, out)
    assert storage.read_marker(out)["kind"] == "run" and storage.read_marker(out)["complete"]
    (out / "kept" / "stray.txt").write_text("made by hand inside a gristmill output")
    _run_ok(tmp_path, corpus, out, "--overwrite")  # its own kind: replaced
    assert not (out / "kept" / "stray.txt").exists()
    tokens = tmp_path / "tokens"
    code, output = invoke("tokenize", "-i", out, "-t", tokdir_small, "-o", tokens, "--seq-len", "16", "--no-progress")
    assert code == 0, output
    # a run may not replace a token folder, a tokenize may not replace a run output
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), tokens), "--overwrite", "--no-progress")
    assert code == 2 and "tokens output, not a run output" in one_line_error(output)
    code, output = invoke("tokenize", "-i", corpus, "-t", tokdir_small, "-o", out, "--seq-len", "16", "--overwrite",
                          "--no-progress")
    assert code == 2 and "run output, not a tokens output" in one_line_error(output)
    assert (tokens / "manifest.json").exists() and (out / "stats.json").exists()


def test_tokenize_and_tokenizer_train_never_write_over_their_input(tmp_path: Path, tokdir_small: Path) -> None:
    corpus = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    _run_ok(tmp_path, corpus, out)
    kept = _snapshot(out)
    for target in (out / "kept", out, tmp_path):  # the input, the run holding it, a folder above it
        code, output = invoke("tokenize", "-i", out / "kept", "-t", tokdir_small, "-o", target, "--overwrite",
                              "--no-progress")
        assert code == 2 and "the input" in one_line_error(output)
    code, output = invoke("tokenize", "-i", out, "-t", tokdir_small, "-o", tokdir_small, "--overwrite", "--no-progress")
    assert code == 2 and "the input" in one_line_error(output)  # the tokenizer is an input too
    code, output = invoke("tokenizer", "train", "-i", out / "kept", "-o", out / "kept", "--overwrite", "--no-progress")
    assert code == 2 and "the input" in one_line_error(output)
    assert _snapshot(out) == kept and (tokdir_small / "tokenizer.json").exists()


def test_tokenizer_train_refuses_a_user_folder(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in", 50)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tokenizer.json").write_text("{}")  # someone's own tokenizer, not made by gristmill
    for extra in ([], ["--overwrite"]):
        code, output = invoke("tokenizer", "train", "-i", corpus, "-o", mine, "--vocab-size", "100", "--no-progress",
                              *extra)
        assert code == 2, output
        one_line_error(output)
    assert (mine / "tokenizer.json").read_text() == "{}"
    tokens = tmp_path / "tokens"  # another kind of gristmill output, without --overwrite
    tokens.mkdir()
    (tokens / "manifest.json").write_text("{}")
    storage.mark_output(tokens, "tokens", complete=True)
    code, output = invoke("tokenizer", "train", "-i", corpus, "-o", tokens, "--vocab-size", "100", "--no-progress")
    assert code == 2 and "not a gristmill tokenizer folder" in one_line_error(output)
    assert storage.read_marker(tokens)["kind"] == "tokens" and not (tokens / "tokenizer.json").exists()


def test_finetune_out_equal_to_the_model_is_refused(tmp_path: Path) -> None:
    """finetune --model RUN --out RUN --overwrite destroyed the pretraining run."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"weights")
    storage.mark_output(run, "pretrain", complete=True)
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": f"t {i}", "label": "ab"[i % 2]} for i in range(8)])
    before = _snapshot(run)
    code, output = invoke("finetune", "--model", run, "--train", train, "--out", run, "--overwrite", "--epochs", "1")
    assert code == 2 and "the input" in one_line_error(output)
    assert _snapshot(run) == before


def test_finetune_overwrite_of_another_kind_is_refused_before_training(tmp_path: Path) -> None:
    from gristmill.train.finetune import finetune
    from gristmill.train.finetuned import FineTuneError
    from gristmill.train.tasks import TaskData, TaskSpec

    run = tmp_path / "run"
    run.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    data = TaskData(spec=TaskSpec(type="classification", labels=["a", "b"]), train=[], paths={"train": str(tmp_path / "t.jsonl")})
    with pytest.raises(FineTuneError, match="not made by gristmill"):
        finetune(run, data, out=other, overwrite=True)
    assert (other / "keep.txt").exists()


def test_export_out_equal_to_the_model_is_refused(tmp_path: Path) -> None:
    """export --out FT overwrote the fine-tuned folder in place."""
    ft = tmp_path / "ft"
    ft.mkdir()
    (ft / "task.json").write_text("{}")
    storage.mark_output(ft, "finetune", complete=True)
    before = _snapshot(ft)
    for out in (ft, tmp_path):
        code, output = invoke("export", ft, "--format", "onnx", "--out", out, "--overwrite")
        assert code == 2 and "the input" in one_line_error(output)
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("x")
    code, output = invoke("export", ft, "--format", "onnx", "--out", user, "--overwrite")
    assert code == 2 and "not made by gristmill" in one_line_error(output)
    assert _snapshot(ft) == before and (user / "a.txt").exists()


def test_pretrain_out_equal_to_its_tokens_or_a_user_folder_is_refused(tmp_path: Path) -> None:
    from gristmill.model.config import ModelConfig
    from gristmill.train.pretrain import PretrainConfig, PretrainError, prepare_run_dir

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "manifest.json").write_text("{}")
    with pytest.raises(PretrainError, match="is the input"):
        prepare_run_dir(PretrainConfig(data=str(tokens), out=str(tokens), overwrite=True), ModelConfig(vocab_size=100), None)
    user = tmp_path / "user"
    user.mkdir()
    (user / "config.json").write_text("{}")  # looks like a model folder, but gristmill did not make it
    with pytest.raises(PretrainError, match="not made by gristmill"):
        prepare_run_dir(PretrainConfig(data=str(tokens), out=str(user), overwrite=True), ModelConfig(vocab_size=100), None)
    assert (tokens / "manifest.json").exists() and (user / "config.json").exists()


def test_remove_output_keeps_the_lock_and_accepts_legacy_folders(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with storage.output_lock(out):
        storage.mark_output(out, "run")
        (out / "kept").mkdir()
        (out / "kept" / "a.parquet").write_bytes(b"x")
        storage.remove_output(out, "run")
        assert [p.name for p in out.iterdir()] == [storage.LOCK]
    legacy = tmp_path / "legacy"
    (legacy / "_work").mkdir(parents=True)
    (legacy / "_work" / "recipe.json").write_text("{}")
    storage.remove_output(legacy, "run", legacy=("_work/recipe.json",))
    assert not any(legacy.iterdir())
    with pytest.raises(storage.OutputError, match="not made by gristmill"):
        storage.remove_output(tmp_path, "run", legacy=("_work/recipe.json",))


# ---------------------------------------------------------------- principle 5: completion and lock


def _killed_run(tmp_path: Path, corpus: Path, out: Path) -> None:
    """A real run killed with SIGKILL after its first finished shard."""
    import signal
    import time

    recipe = write_recipe(tmp_path / "slow.yaml", str(corpus), out, steps="  - step_fixtures:Sleepy: {seconds: 0.004}\n",
                          extra=", shard_size: 50")
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "gristmill", "run", str(recipe), "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    done = out / "_work" / "stage1" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and not (done.exists() and any(done.iterdir())):
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_downstream_verbs_refuse_an_unfinished_run(tmp_path: Path, tokdir_small: Path) -> None:
    """tokenize --input OUT/kept of a killed run silently tokenized 1,279 of 2,262 documents."""
    corpus = _corpus(tmp_path / "in", 600)
    out = tmp_path / "out"
    _killed_run(tmp_path, corpus, out)
    assert list((out / "kept").glob("*.parquet")), "the killed run had written some kept documents"
    assert storage.read_marker(out)["complete"] is False
    for source in (out, out / "kept", next((out / "kept").glob("*.parquet"))):
        code, output = invoke("tokenize", "-i", source, "-t", tokdir_small, "-o", tmp_path / "tok", "--no-progress")
        assert code == 2 and "unfinished gristmill run output" in one_line_error(output)
    code, output = invoke("tokenizer", "train", "-i", out / "kept", "-o", tmp_path / "tk", "--no-progress")
    assert code == 2 and "--allow-incomplete" in one_line_error(output)
    code, output = invoke("run", write_recipe(tmp_path / "next.yaml", f"{out}/kept/*.parquet", tmp_path / "o2"),
                          "--no-progress")
    assert code == 2 and "unfinished" in one_line_error(output)
    code, output = invoke("tokenize", "-i", out / "kept", "-t", tokdir_small, "-o", tmp_path / "tok", "--seq-len", "16",
                          "--no-progress", "--allow-incomplete")
    assert code == 0, output


def test_a_second_writer_of_an_output_is_refused(tmp_path: Path, tokdir_small: Path) -> None:
    """Two runs on one output raced and crashed; now the second one stops with one line, touching nothing."""
    corpus = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from gristmill.data import storage
        with storage.output_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), out), "--no-progress")
        assert code == 2 and "another gristmill process is writing" in one_line_error(output)
        code, output = invoke("tokenize", "-i", corpus, "-t", tokdir_small, "-o", out, "--no-progress")
        assert code == 2 and "another gristmill process" in one_line_error(output)
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "kept").exists()
    _run_ok(tmp_path, corpus, out)  # the holder is gone (killed): the lock went with it


# ---------------------------------------------------------------- principle 7 (data side): output paths, disk full


def test_output_that_is_a_file_or_below_a_file_is_one_line(tmp_path: Path, tokdir_small: Path) -> None:
    corpus = _corpus(tmp_path / "in")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "out"):
        code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), out), "--no-progress")
        assert code == 2, output
        one_line_error(output)
        code, output = invoke("tokenize", "-i", corpus, "-t", tokdir_small, "-o", out, "--no-progress")
        assert code == 2, output
        one_line_error(output)
    assert afile.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), locked / "out"), "--no-progress")
    assert code == 2 and "cannot" in one_line_error(output)


def test_disk_full_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import gristmill.data.run as run_module

    def full(docs, path, fmt="parquet"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(run_module, "write_documents", full)
    corpus = _corpus(tmp_path / "in")
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), tmp_path / "out"), "--no-progress")
    line = one_line_error(output)
    assert code == 2 and "no space left" in line.lower() and "part-00000" in line and "--resume" in line


def test_other_os_errors_stay_bugs() -> None:
    assert describe_os_error(OSError(errno.EIO, "I/O error")) is None
    assert "quota" in describe_os_error(OSError(errno.EDQUOT, "Disk quota exceeded", "f"))
    import gristmill.data.storage

    assert not hasattr(gristmill.data.storage, "describe_os_error")  # one wording, in gristmill.errors


def test_markers_record_kind_and_completion(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    _run_ok(tmp_path, corpus, out)
    marker = json.loads((out / storage.MARKER).read_text())
    assert marker["kind"] == "run" and marker["complete"] is True and GOOD


def test_main_turns_disk_full_of_any_verb_into_one_line(monkeypatch, capsys) -> None:
    import gristmill.cli as cli

    def full() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "RUN/checkpoints/step-10/optimizer.pt")

    monkeypatch.setattr(cli, "app", full)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    assert "no space left" in capsys.readouterr().err.lower()

    def bug() -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(cli, "app", bug)
    with pytest.raises(OSError):
        cli.main()


def test_a_work_dir_that_is_a_user_folder_is_never_deleted(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "in")
    work = tmp_path / "mywork"
    work.mkdir()
    (work / "precious.txt").write_text("x")
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(corpus), tmp_path / "out"), "--work-dir", work,
                          "--no-progress")
    assert code == 2 and "not made by gristmill" in one_line_error(output)
    assert (work / "precious.txt").read_text() == "x"
