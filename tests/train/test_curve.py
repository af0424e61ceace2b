"""Learning curves: every (size, seed, init) is run once, resumed runs are not redone, the table and plot
agree with the runs."""

from __future__ import annotations

import json
import random
import shutil
import statistics
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from gristmill.model.config import ModelConfig
from gristmill.model.transformer import MaskedLM
from gristmill.tokenizer.tokdir import save_tokdir
from gristmill.train.checkpoint import save_run_weights
from gristmill.train.curve import parse_inits, parse_sizes, run_curve
from gristmill.train.finetune import FineTuneConfig
from gristmill.train.finetuned import FineTuneError
from gristmill.train.tasks import load_task

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = pytest.mark.slow

WORDS = {"a": ["red", "green", "blue"], "b": ["cat", "dog", "cow"], "c": ["one", "two", "six"]}
FILLER = ["the", "is", "on", "at"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add spin-waiting on a busy machine
    yield
    torch.set_num_threads(before)


def rows(n: int, rng: random.Random) -> list[dict]:
    out = [{"text": " ".join(rng.sample(words, 2) + rng.sample(FILLER, 2)), "label": label}
           for label, words in WORDS.items() for _ in range(n)]
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *FILLER, *(w for ws in WORDS.values() for w in ws)]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    run = root / "run"
    save_tokdir(tok, run / "tokenizer", lowercase=False, model_max_length=16)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                         max_position=16, name="test")
    config.to_json(run / "config.json")
    torch.manual_seed(0)
    save_run_weights(MaskedLM(config), run / "model.safetensors")
    rng = random.Random(1)
    paths = {}
    for split, n in (("train", 12), ("dev", 4), ("test", 6)):
        paths[split] = root / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in rows(n, rng)))
    return run, load_task(paths["train"], paths["dev"], paths["test"], max_length=16), root


def test_parse_inits():
    assert parse_inits("scratch, pretrained,scratch") == ["scratch", "pretrained"]
    with pytest.raises(FineTuneError, match="name at least one"):
        parse_inits(" , ")


def test_parse_sizes():
    assert parse_sizes("8, 32,all") == [8, 32, None]
    with pytest.raises(FineTuneError, match="'x' is not a number"):
        parse_sizes("8,x")
    with pytest.raises(FineTuneError, match="at least 1"):
        parse_sizes("0")


def test_curve_runs_each_point_summarises_and_resumes(task):
    run, data, root = task
    out = root / "curve"
    cfg = FineTuneConfig(lr=1e-3, epochs=2, batch_size=4)
    summary = run_curve(run, data, [2, None], [0, 1], out, cfg)
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["per_class"], r["seed"], r["init"]) for r in runs) == sorted(
        (size, seed, init) for size in ("2", "all") for seed in (0, 1)
        for init in ("pretrained", "scratch", "tfidf-logreg"))
    assert {r["train_examples"] for r in runs if r["per_class"] == "2"} == {6}
    assert {r["train_examples"] for r in runs if r["per_class"] == "all"} == {36}

    point = next(p for p in summary["points"] if p["per_class"] == "2" and p["init"] == "scratch")
    accs = [r["test_accuracy"] for r in runs if r["per_class"] == "2" and r["init"] == "scratch"]
    assert point["accuracy_mean"] == pytest.approx(statistics.fmean(accs))
    assert point["accuracy_std"] == pytest.approx(statistics.stdev(accs))
    gap = next(d for d in summary["pretrained_minus_scratch"] if d["per_class"] == "all")
    pre = {r["seed"]: r["test_accuracy"] for r in runs if r["per_class"] == "all" and r["init"] == "pretrained"}
    scr = {r["seed"]: r["test_accuracy"] for r in runs if r["per_class"] == "all" and r["init"] == "scratch"}
    assert gap["accuracy_points_mean"] == pytest.approx(100 * statistics.fmean(pre[s] - scr[s] for s in (0, 1)))
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| all | pretrained | 2 |" in (out / "curve.md").read_text()
    # The baseline is fitted on the very samples the encoders saw, and the word lists make it easy.
    base = {r["seed"]: r for r in runs if r["init"] == "tfidf-logreg" and r["per_class"] == "all"}
    assert all(r["train_examples"] == 36 and r["test_accuracy"] > 0.9 for r in base.values())
    assert "| all | tfidf-logreg | 2 |" in (out / "curve.md").read_text()
    vs_base = next(d for d in summary["pretrained_minus_baseline"] if d["per_class"] == "all")
    assert vs_base["accuracy_points_mean"] == pytest.approx(
        100 * statistics.fmean(pre[s] - base[s]["test_accuracy"] for s in (0, 1)))

    # Resuming with one more seed runs only the new seed's six runs (four fine-tunings, two baselines).
    run_curve(run, data, [2, None], [0, 1, 2], out, cfg)
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 18 and sum(r["seed"] == 2 for r in runs) == 6

    # An adapted run adds its own line beside the others (only its fine-tunings are run).
    adapted = root / "curve-adapted"
    run_curve(run, data, [2], [0], adapted, cfg, inits=("pretrained",))
    assert [r["init"] for r in map(json.loads, (adapted / "runs.jsonl").read_text().splitlines())] == ["pretrained"]

    with pytest.raises(FineTuneError, match="another model, data or budget"):
        run_curve(run, data, [2], [0], out, FineTuneConfig(lr=1e-2, epochs=2))


def test_curve_needs_pretrained_weights(task, tmp_path):
    run, data, _ = task
    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    (bare / "model.safetensors").unlink()
    with pytest.raises(FineTuneError, match="no pretrained weights"):
        run_curve(bare, data, [2], [0], tmp_path / "c")
    assert not Path(tmp_path / "c").exists()


def test_curve_command(task, tmp_path):
    from typer.testing import CliRunner

    from gristmill.cli import app

    run, data, root = task
    out = tmp_path / "c"
    result = CliRunner().invoke(app, ["curve", "--model", str(run), "--train", data.paths["train"], "--dev",
                                      data.paths["dev"], "--test", data.paths["test"], "--per-class", "2,all",
                                      "--seeds", "1", "--epochs", "1", "--max-length", "16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| all | scratch | 1 |" in result.output and "| all | tfidf-logreg | 1 |" in result.output
    assert (out / "curve.png").is_file() and len((out / "runs.jsonl").read_text().splitlines()) == 6

    result = CliRunner().invoke(app, ["curve", "--model", str(run), "--train", data.paths["train"], "--test",
                                      data.paths["test"], "--per-class", "8,lots", "--out", str(out)])
    assert result.exit_code == 2 and "'lots' is not a number" in result.output

    only = tmp_path / "only"
    result = CliRunner().invoke(app, ["curve", "--model", str(run), "--train", data.paths["train"], "--test",
                                      data.paths["test"], "--per-class", "2", "--seeds", "2", "--epochs", "1",
                                      "--max-length", "16", "--inits", "tfidf-logreg, pretrained", "--out", str(only)])
    assert result.exit_code == 0, result.output
    runs = [json.loads(line) for line in (only / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["seed"], r["init"]) for r in runs) == [(0, "pretrained"), (0, "tfidf-logreg"),
                                                           (1, "pretrained"), (1, "tfidf-logreg")]

    result = CliRunner().invoke(app, ["curve", "--model", str(run), "--train", data.paths["train"], "--test",
                                      data.paths["test"], "--inits", "pretrained,adapted", "--out", str(only)])
    assert result.exit_code == 2 and "'adapted' is not one of pretrained, scratch, tfidf-logreg" in result.output
