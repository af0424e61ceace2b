"""Damaged or hostile input to tokenize, pretrain and finetune: one line naming the file, exit 2 or 3, no traceback.

Shards: zeroed, garbage, truncated, a manifest with a lowered vocabulary, a path outside the folder, a
100,000-token seq_len, broken JSON. Checkpoints: overwritten weights, a damaged optimizer state, a kill
between recording a checksum and renaming the weights. Task files: bytes that are not UTF-8, lone
surrogates, broken gzip, absurd nesting and numbers."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill import checksums
from gristmill.cli import app
from gristmill.errors import BAD_DATA, USER_ERROR, BadDataError
from gristmill.model.config import ConfigError, ModelConfig
from gristmill.tokenizer import TokenDataset
from gristmill.tokenizer.manifest import ShardError
from gristmill.train.tasks import TaskDataError, load_sequence_examples

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


def one_line(result) -> bool:
    lines = result.output.strip().splitlines()
    return "Traceback" not in result.output and sum(line.startswith("error:") for line in lines) == 1


@pytest.fixture
def tokens(pretrain_tokens: Path, tmp_path: Path) -> Path:
    """A private copy of the session's shards, free to damage."""
    return Path(shutil.copytree(pretrain_tokens, tmp_path / "tokens"))


def edit_manifest(tokens: Path, change) -> None:
    path = tokens / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def first_shard(tokens: Path) -> Path:
    return tokens / json.loads((tokens / "manifest.json").read_text())["splits"]["train"]["shards"][0]["ids"]


def pretrain_args(tokens: Path, out: Path, model_config: Path, *extra: str) -> list:
    return ["pretrain", "--data", tokens, "--out", out, "--config", model_config, "--steps", "2", "--batch-size", "4",
            "--no-progress", "--threads", "1", "--eval-every", "0", *extra]


# ------------------------------------------------------------------------------------------------ shards


def test_manifest_records_shard_checksums(pretrain_tokens: Path) -> None:
    manifest = json.loads((pretrain_tokens / "manifest.json").read_text())
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            for key in ("ids", "flags"):
                assert shard[f"{key}_xxh3_64"] == checksums.digest(pretrain_tokens / shard[key])


def test_zeroed_shard_is_caught_by_its_checksum(tokens: Path, pretrain_model_config: Path, tmp_path: Path) -> None:
    shard = first_shard(tokens)
    shard.write_bytes(b"\0" * shard.stat().st_size)  # same size: only the hash can tell
    ds = TokenDataset(tokens)  # sizes are fine, so opening works; the first use of the shard is not
    with pytest.raises(ShardError, match="checksum"):
        ds.get_batch(list(range(len(ds))))
    with pytest.raises(ShardError, match=str(shard.name)):
        TokenDataset(tokens, verify=True)
    for extra in ((), ("--verify",)):
        result, text = invoke(*pretrain_args(tokens, tmp_path / f"run{len(extra)}", pretrain_model_config, *extra))
        assert result.exit_code == BAD_DATA and one_line(result) and "00000.ids.bin" in text and "checksum" in text


def test_garbage_shard_without_checksums_is_caught_by_the_id_range(tokens: Path, pretrain_model_config: Path,
                                                                  tmp_path: Path) -> None:
    """An older manifest has no hashes: ids beyond the vocabulary still stop the run (was an IndexError)."""
    def drop_hashes(m):
        for split in m["splits"].values():
            for shard in split["shards"]:
                shard.pop("ids_xxh3_64"), shard.pop("flags_xxh3_64")

    edit_manifest(tokens, drop_hashes)
    shard = first_shard(tokens)
    shard.write_bytes(b"\xff" * shard.stat().st_size)
    result, text = invoke(*pretrain_args(tokens, tmp_path / "run", pretrain_model_config))
    assert result.exit_code == BAD_DATA and one_line(result)
    assert "00000.ids.bin holds token id 65535, beyond the vocabulary of 1000" in text


@pytest.mark.parametrize("damage,match", [
    (lambda m: m["tokenizer"].update(vocab_size=100), "vocabulary has 100 tokens, but its tokenizer has"),
    (lambda m: m["tokenizer"].update(vocab_size=10**6, dtype="uint32"), "vocabulary has 1000000 tokens"),
    (lambda m: m.update(seq_len=100000), "seq_len must be an integer in \\[8, 8,192\\]"),
    (lambda m: m.update(seq_len=4), "seq_len must be"),
    (lambda m: m["splits"]["train"]["shards"][0].update(ids="../../../etc/passwd"), "outside the folder"),
    (lambda m: m["splits"]["train"]["shards"][0].update(ids="/etc/passwd"), "outside the folder"),
    (lambda m: m["splits"]["train"]["shards"][0].pop("sequences"), "damaged: KeyError"),
    (lambda m: m["splits"]["train"].update(shards="nonsense"), "damaged"),
    (lambda m: m["tokenizer"]["special"].update(mask=5000), "outside the vocabulary"),
    (lambda m: m["splits"]["train"]["shards"][0].update(sequences=10**9), "manifest says"),
])
def test_damaged_manifests_are_refused(tokens: Path, damage, match: str) -> None:
    edit_manifest(tokens, damage)
    with pytest.raises(ShardError, match=match):
        TokenDataset(tokens)


def test_manifest_that_is_not_json_is_bad_data(tokens: Path, pretrain_model_config: Path, tmp_path: Path) -> None:
    text = (tokens / "manifest.json").read_bytes()
    (tokens / "manifest.json").write_bytes(text[: len(text) // 2])
    result, out = invoke(*pretrain_args(tokens, tmp_path / "run", pretrain_model_config))
    assert result.exit_code == BAD_DATA and one_line(result) and "manifest.json is not valid JSON" in out
    (tokens / "manifest.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ShardError):
        TokenDataset(tokens)


def test_lowered_vocab_manifest_via_pretrain_is_exit_3(tokens: Path, tmp_path: Path) -> None:
    edit_manifest(tokens, lambda m: m["tokenizer"].update(vocab_size=100))
    result, text = invoke("pretrain", "--data", tokens, "--out", tmp_path / "run", "--model-size", "tiny", "--steps",
                          "2", "--batch-size", "4", "--no-progress")
    assert result.exit_code == BAD_DATA and one_line(result) and "pack the corpus again" in text
    assert not (tmp_path / "run").exists()  # refused before any work


def test_truncated_shard_is_bad_data(tokens: Path) -> None:
    shard = first_shard(tokens)
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ShardError, match="bytes, the manifest says"):
        TokenDataset(tokens)


# ---------------------------------------------------------------------------------------------- seq_len


def test_tokenize_refuses_sequences_longer_than_the_tokenizer_or_any_model(pretrain_tokens: Path,
                                                                          tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "1", "text": "hello world"}\n')
    tok = pretrain_tokens / "tokenizer"
    result, text = invoke("tokenize", "-i", docs, "-t", tok, "-o", tmp_path / "t", "--seq-len", "100000")
    assert result.exit_code == USER_ERROR and one_line(result) and "--seq-len must be an integer in [8, 8,192]" in text
    result, text = invoke("tokenize", "-i", docs, "-t", tok, "-o", tmp_path / "t", "--seq-len", "1024")
    assert result.exit_code == USER_ERROR and one_line(result)
    assert "longer than the tokenizer's model_max_length 512" in text and "tokenizer_config.json" in text
    assert not (tmp_path / "t").exists()


def test_models_are_bounded_in_positions(tokens: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_position 100000"):
        ModelConfig(vocab_size=1000, max_position=100000)
    small = tmp_path / "small.json"
    ModelConfig(vocab_size=1000, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                max_position=16).to_json(small)
    result, text = invoke(*pretrain_args(tokens, tmp_path / "run", small))
    assert result.exit_code == USER_ERROR and one_line(result) and "only 16 positions" in text


# ------------------------------------------------------------------------------------- weights, checkpoints


@pytest.fixture
def trained_run(tokens: Path, pretrain_model_config: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    result, _ = invoke(*pretrain_args(tokens, run, pretrain_model_config, "--save-every", "1"))
    assert result.exit_code == 0, result.output
    return run


def test_weights_carry_checksums_and_overwrites_are_caught(trained_run: Path, tokens: Path,
                                                           pretrain_model_config: Path) -> None:
    record = json.loads((trained_run / "checksums.json").read_text())["model.safetensors"]
    assert record == checksums.describe(trained_run / "model.safetensors")
    step = trained_run / "checkpoints" / "step-0000002"
    assert (step / "checksums.json").is_file()
    # Overwritten in place with the same number of bytes: only the hash can tell.
    weights = trained_run / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = b"\x7f" * 64
    weights.write_bytes(bytes(data))
    result, text = invoke("fill-mask", trained_run, "the [MASK] is")
    assert result.exit_code == BAD_DATA and one_line(result) and "model.safetensors" in text and "checksum" in text
    # The checkpoint's weights too, when resuming.
    (step / "model.safetensors").write_bytes(b"\0" * (step / "model.safetensors").stat().st_size)
    result, text = invoke(*pretrain_args(tokens, trained_run, pretrain_model_config, "--resume", "--steps", "3"))
    assert result.exit_code == BAD_DATA and one_line(result) and "step-0000002" in text


def test_damaged_optimizer_state_is_bad_data(trained_run: Path, tokens: Path, pretrain_model_config: Path) -> None:
    (trained_run / "checkpoints" / "step-0000002" / "optimizer.pt").write_bytes(b"not a torch file")
    result, text = invoke(*pretrain_args(tokens, trained_run, pretrain_model_config, "--resume", "--steps", "3"))
    assert result.exit_code == BAD_DATA and one_line(result) and "step-0000002" in text


def test_truncated_run_weights_are_bad_data(trained_run: Path) -> None:
    weights = trained_run / "model.safetensors"
    (trained_run / "checksums.json").unlink()  # as written by an older gristmill: no record to compare
    weights.write_bytes(weights.read_bytes()[:5000])
    result, text = invoke("fill-mask", trained_run, "the [MASK] is")
    assert result.exit_code == BAD_DATA and one_line(result) and "damaged or not a safetensors file" in text


def test_kill_between_recording_and_renaming_leaves_a_verifiable_pair(tmp_path: Path) -> None:
    final, tmp = tmp_path / "model.safetensors", tmp_path / ".model.safetensors.tmp"
    final.write_bytes(b"old weights")
    checksums.record_sidecar(final)
    tmp.write_bytes(b"new weights!")
    # The first half of replace_recorded: the new record is in, the rename has not happened.
    records = json.loads((tmp_path / "checksums.json").read_text())
    records["model.safetensors.previous"] = records["model.safetensors"]
    records["model.safetensors"] = checksums.describe(tmp)
    (tmp_path / "checksums.json").write_text(json.dumps(records))
    assert checksums.verify_sidecar(final)  # the old file still verifies
    checksums.replace_recorded(tmp, final)
    assert checksums.verify_sidecar(final) and final.read_bytes() == b"new weights!"
    assert "model.safetensors.previous" not in json.loads((tmp_path / "checksums.json").read_text())
    final.write_bytes(b"old weights")  # a stale file is no longer accepted once the rename is recorded
    with pytest.raises(checksums.CorruptFileError):
        checksums.verify_sidecar(final)


def test_damaged_checksum_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"x")
    (tmp_path / "checksums.json").write_text("{broken")
    with pytest.raises(checksums.CorruptFileError, match="checksums.json is damaged"):
        checksums.verify_sidecar(tmp_path / "w.bin")


# ------------------------------------------------------------------------------------------------ task files


GOOD = b'{"text": "a fine line", "label": "x"}\n{"text": "another", "label": "y"}\n'


@pytest.mark.parametrize("bad,match", [
    (b'{"text": "caf\xe9", "label": "x"}\n', "train.jsonl:3: invalid UTF-8 at byte [0-9]+; re-encode"),  # Latin-1, not UTF-8
    (b'{"text": "\\ud800 lone", "label": "x"}\n', "train.jsonl:3: lone surrogate"),
    (b'{"text": "ok", "label": "\\udfff"}\n', "train.jsonl:3: lone surrogate"),
    (b'{"text": "ok", "label": "x", "meta": {"\\ud800": 1}}\n', "train.jsonl:3: lone surrogate"),
    (b'{"text": "ok", "label": ' + b"[" * 3000 + b"]" * 3000 + b"}\n", "train.jsonl:3: JSON nested deeper than"),
    (b'{"text": "ok", "label": ' + b"9" * 5000 + b"}\n", "train.jsonl:3: .*integer"),
    (b'{"text": "ok", "label": NaN\n', "train.jsonl:3: invalid JSON"),
    (b"[1, 2]\n", "train.jsonl:3: expected a JSON object"),
    (b"\x00\x01\x02garbage\n", "train.jsonl:3: invalid JSON"),
])
def test_task_file_damage_names_file_and_line(tmp_path: Path, bad: bytes, match: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(GOOD + bad)
    with pytest.raises(TaskDataError, match=match):
        load_sequence_examples(path)
    assert issubclass(TaskDataError, BadDataError)


def test_finetune_with_damaged_task_file_is_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(GOOD + b'{"text": "\\ud800", "label": "x"}\n')
    result, text = invoke("finetune", "--model", tmp_path / "no-run", "--train", path, "--out", tmp_path / "ft")
    assert result.exit_code == BAD_DATA and one_line(result) and "train.jsonl:3" in text
    path.write_bytes(GOOD + b'{"text": "\xff\xfe", "label": "x"}\n')
    result, text = invoke("finetune", "--model", tmp_path / "no-run", "--train", path, "--out", tmp_path / "ft")
    assert result.exit_code == BAD_DATA and one_line(result) and "invalid UTF-8" in text


def test_task_file_gzip_damage_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(gzip.compress(GOOD * 200)[:-30])
    with pytest.raises(TaskDataError, match="damaged"):
        load_sequence_examples(path)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + GOOD)  # written by some editors: accepted
    assert [e.text for e in load_sequence_examples(bom)] == ["a fine line", "another"]


def test_pretrain_output_below_a_file(tokens: Path, pretrain_model_config: Path, tmp_path: Path, monkeypatch,
                                      capsys) -> None:
    import sys

    from gristmill.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    argv = pretrain_args(tokens, blocker / "run", pretrain_model_config)
    monkeypatch.setattr(sys, "argv", ["gristmill", *[str(a) for a in argv]])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == USER_ERROR and "a-file" in err and "not a folder" in err and "Traceback" not in err
    assert blocker.read_text() == "mine"
