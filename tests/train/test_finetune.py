"""Fine-tuning: the pretrained/scratch switch, learning, metrics against scikit-learn, FT/ round trip,
token classification, and the messages for bad input."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.model.config import ModelConfig
from gristmill.model.transformer import MaskedLM
from gristmill.serve.backends import PredictError
from gristmill.serve.loading import classifier_from, tagger_from
from gristmill.tokenizer.tokdir import save_tokdir
from gristmill.train.checkpoint import save_run_weights
from gristmill.train.device import training_device
from gristmill.train.encoding import Encoded, encode_sequences
from gristmill.train.finetune import FineTuneConfig, build_model, class_weight_tensor, finetune
from gristmill.train.finetuned import FineTuneError, load_finetuned
from gristmill.train.forward import pad_batch
from gristmill.train.tasks import TaskSpec, load_task

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = pytest.mark.slow

TOPICS = {
    "space": ["rocket", "orbit", "moon", "star", "planet", "comet", "galaxy", "launch", "astronaut", "telescope"],
    "food": ["bread", "cheese", "apple", "soup", "butter", "pasta", "salad", "onion", "garlic", "pepper"],
    "sport": ["goal", "match", "team", "ball", "referee", "score", "player", "coach", "league", "stadium"],
}
FILLER = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "that", "with", "for", "on", "as", "by", "this"]
CITIES = ["paris", "london", "berlin", "madrid", "rome", "vienna", "oslo", "prague", "dublin", "lisbon"]
FIRST = ["john", "mary", "peter", "anna", "paul", "lucy", "mark", "emma"]
LAST = ["smith", "jones", "brown", "taylor", "wilson", "evans"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def topic_rows(n_per_class: int, rng: random.Random) -> list[dict]:
    rows = []
    for label, words in TOPICS.items():
        for _ in range(n_per_class):
            text = rng.sample(words, 4) + rng.sample(FILLER, 5)
            rng.shuffle(text)
            rows.append({"text": " ".join(text), "label": label})
    rng.shuffle(rows)
    return rows


def ner_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(4, 9)):
            r = rng.random()
            if r < 0.15:
                tokens.append(rng.choice(CITIES))
                tags.append("B-LOC")
            elif r < 0.3:
                tokens += [rng.choice(FIRST).capitalize(), rng.choice(LAST).capitalize()]
                tags += ["B-PER", "I-PER"]
            else:
                tokens.append(rng.choice(FILLER))
                tags.append("O")
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def make_tokdir(path: Path) -> Path:
    """A fixed WordPiece vocabulary (deterministic, unlike a trained one): the task words, then letters."""
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER + CITIES + FIRST + LAST))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *letters, *(f"##{c}" for c in letters)]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return save_tokdir(tok, path, lowercase=True, model_max_length=64)


def make_run(path: Path, tokdir: Path, seed: int = 123) -> Path:
    """A RUN folder in the layout `gristmill pretrain` writes, with (random) MaskedLM weights."""
    vocab = Tokenizer.from_file(str(tokdir / "tokenizer.json")).get_vocab_size()
    config = ModelConfig(vocab_size=vocab, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                         max_position=64, name="test")
    torch.manual_seed(seed)
    path.mkdir(parents=True)
    config.to_json(path / "config.json")
    save_run_weights(MaskedLM(config), path / "model.safetensors")
    shutil.copytree(tokdir, path / "tokenizer")
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy machine the threads' spin-waiting
    # makes them many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    tokdir = make_tokdir(root / "tok")
    run = make_run(root / "run", tokdir)
    rng = random.Random(0)
    files = {
        "train": write_jsonl(root / "train.jsonl", topic_rows(30, rng)),
        "dev": write_jsonl(root / "dev.jsonl", topic_rows(8, rng)),
        "test": write_jsonl(root / "test.jsonl", topic_rows(15, rng)),
        "ner_train": write_jsonl(root / "ner_train.jsonl", ner_rows(150, rng)),
        "ner_dev": write_jsonl(root / "ner_dev.jsonl", ner_rows(30, rng)),
        "ner_test": write_jsonl(root / "ner_test.jsonl", ner_rows(40, rng)),
    }
    return {"root": root, "tokdir": tokdir, "run": run, **files}


FAST = ["--lr", "1e-3", "--epochs", "8", "--batch-size", "8", "--max-length", "32"]


def cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


# ------------------------------------------------------------------------------ the scratch/pretrained switch


def test_pretrained_loads_encoder_weights_and_scratch_does_not(setup):
    spec = TaskSpec(type="sequence", labels=list(TOPICS), max_length=32)
    saved = load_file(str(setup["run"] / "model.safetensors"))
    pre, _ = build_model(setup["run"], spec, from_scratch=False, seed=5)
    scratch, _ = build_model(setup["run"], spec, from_scratch=True, seed=5)
    pre_state, scratch_state = pre.encoder.state_dict(), scratch.encoder.state_dict()
    for name, tensor in pre_state.items():
        assert torch.equal(tensor, saved[f"encoder.{name}"]), name
    differing = [n for n, t in scratch_state.items() if t.numel() > 1 and not torch.equal(t, saved[f"encoder.{n}"])]
    assert "embeddings.word_embeddings.weight" in differing and "layers.0.attention.qkv.weight" in differing
    # Same seed, same head: the two runs differ only in the encoder.
    assert torch.equal(pre.classifier.weight, scratch.classifier.weight)


def test_scratch_and_pretrained_runs_share_budget_and_sample(setup):
    data = load_task(setup["train"], setup["dev"], max_length=32)
    cfg = FineTuneConfig(lr=1e-3, epochs=2, batch_size=8)
    pre = finetune(setup["run"], data, cfg, per_class=10, seed=1).metrics
    scratch = finetune(setup["run"], data, cfg, per_class=10, seed=1, from_scratch=True).metrics
    assert (pre["init"], scratch["init"]) == ("pretrained", "scratch")
    assert pre["budget"] == scratch["budget"]
    assert pre["train_label_counts"] == scratch["train_label_counts"] == {"food": 10, "space": 10, "sport": 10}
    assert pre["training"]["steps"] == scratch["training"]["steps"] == 2 * 4


def test_texts_cut_by_max_length_are_reported(setup):
    # Each topic text is 9 words: --max-length 8 leaves room for 6 of them, so every text loses 3 tokens.
    cfg = FineTuneConfig(lr=1e-3, epochs=1, batch_size=8)
    lines: list[str] = []
    cut = finetune(setup["run"], load_task(setup["train"], setup["dev"], max_length=8), cfg, per_class=5,
                   log=lines.append).metrics["truncation"]
    assert cut["train"]["texts"] == cut["train"]["texts_cut"] == 15 and cut["train"]["tokens_cut"] == 45
    assert cut["dev"]["texts_cut"] == cut["dev"]["texts"] == 24
    assert any(line.startswith("15 of 15 training texts are longer than --max-length 8") for line in lines)
    lines.clear()
    whole = finetune(setup["run"], load_task(setup["train"], setup["dev"], max_length=32), cfg, per_class=5,
                     log=lines.append).metrics["truncation"]
    assert whole["train"]["texts_cut"] == 0 and not any("--max-length" in line for line in lines)


# ------------------------------------------------------------------------------------- CLI and FT/ folder


def test_finetune_cli_learns_and_metrics_match_sklearn(setup):
    out = setup["root"] / "ft-seq"
    result, output = cli("finetune", "--model", setup["run"], "--train", setup["train"], "--dev", setup["dev"],
                         "--test", setup["test"], "--out", out, "--per-class", "20", "--seed", "3", *FAST,
                         "--epochs", "30")
    assert result.exit_code == 0, output
    for name in ("config.json", "task.json", "model.safetensors", "tokenizer/tokenizer.json", "metrics.json",
                 "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    task = json.loads((out / "task.json").read_text())
    assert metrics["provenance"]["command"] and metrics["provenance"]["torch"]
    assert task["type"] == "sequence" and task["labels"] == ["food", "space", "sport"] and task["max_length"] == 32
    assert metrics["train_examples"] == 60 and metrics["per_class"] == 20 and metrics["init"] == "pretrained"

    # The saved model, reloaded, reproduces the reported test metrics (computed here with scikit-learn).
    ft = load_finetuned(out)
    assert not ft.model.training and ft.labels == task["labels"] and ft.max_length == 32
    rows = [json.loads(line) for line in setup["test"].read_text().splitlines()]
    probs = classifier_from(ft).predict_proba([r["text"] for r in rows])
    assert probs.shape == (45, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    y_true = [ft.labels.index(r["label"]) for r in rows]
    y_pred = probs.argmax(1).tolist()
    test = metrics["test"]
    assert test["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert test["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert test["confusion_matrix"]["matrix"] == confusion_matrix(y_true, y_pred).tolist()
    assert test["report"]["space"]["support"] == 15
    assert test["accuracy"] >= 0.8  # topic words decide the label (chance: 0.33); a working loop learns it


def test_prediction_has_one_home():
    # serve's Classifier and Tagger predict; fine-tuning keeps only its evaluation forward.
    import gristmill.train.finetune as finetune_module
    import gristmill.train.finetuned as finetuned_module

    for module in (finetune_module, finetuned_module):
        for name in ("predict_proba", "predict_tags", "encode_texts", "encode_pairs"):
            assert not hasattr(module, name), (module.__name__, name)


def test_finetune_json_summary(setup):
    out = setup["root"] / "ft-json"
    result = CliRunner().invoke(app, [str(a) for a in (
        "finetune", "--model", setup["run"], "--train", setup["train"], "--dev", setup["dev"], "--test", setup["test"],
        "-o", out, *FAST, "--epochs", "1", "--json")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    assert summary["out"] == str(out) and summary["init"] == "pretrained" and summary["task"] == "sequence"
    assert summary["test"] == json.loads((out / "metrics.json").read_text())["test"]


def test_encoded_texts_pad_to_longest(setup):
    # The encoding fine-tuning used, padded by the one batched forward (gristmill.train.forward).
    tok = Tokenizer.from_file(str(setup["tokdir"] / "tokenizer.json"))
    texts = ["moon", "rocket moon star", "bread " * 100]
    n = [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    ids, mask, _ = pad_batch(encode_sequences(tok, texts, 16), 0)
    assert ids.dtype == np.int64 and ids.shape == (3, 16) and mask.shape == (3, 16)
    assert mask.sum(1).tolist() == [n[0] + 2, n[1] + 2, 16]
    assert (ids[0, n[0] + 2 :] == 0).all() and (ids[:, 0] == 2).all() and ids[2, 15] == 3
    ids, mask, _ = pad_batch(encode_sequences(tok, texts[:2], 16), 0)
    assert ids.shape == (2, n[1] + 2)  # padded to the longest of this call only


def test_token_classification_end_to_end(setup):
    out = setup["root"] / "ft-ner"
    result, output = cli("finetune", "--model", setup["run"], "--train", setup["ner_train"], "--dev",
                         setup["ner_dev"], "--test", setup["ner_test"], "--out", out, "--from-scratch", *FAST,
                         "--epochs", "12")
    assert result.exit_code == 0, output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "token" and metrics["init"] == "scratch"
    assert metrics["test"]["confusion_matrix"]["labels"] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert metrics["test"]["entity"]["f1"] >= 0.8
    ft = load_finetuned(out)
    words = [["john", "smith", "lives", "in", "paris"], ["oslo"]]
    tags = tagger_from(ft).predict_words(words)
    assert [len(t) for t in tags] == [5, 1]


# ------------------------------------------------------------------------------------------- class weights


def test_class_weights_are_sklearn_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0] * 30 + [1] * 10 + [2] * 5
    encoded = [Encoded([2, 3], [0, 0], [y]) for y in labels]
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=np.array(labels))
    assert np.allclose(class_weight_tensor(encoded, 3).numpy(), expected)


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_give_messages_not_tracebacks(setup, tmp_path):
    root = setup["root"]
    good = ["finetune", "--model", setup["run"], "--train", setup["train"], "--out", tmp_path / "ft", "--epochs", "1",
            "--max-length", "32"]

    dev = write_jsonl(tmp_path / "dev.jsonl", [{"text": "moon", "label": "space"}, {"text": "goal", "label": "chess"}])
    result, output = cli(*good, "--dev", dev)
    assert result.exit_code == 2 and "labels not in the training file: 'chess'" in output

    empty = write_jsonl(tmp_path / "train-empty.jsonl", [{"text": "moon", "label": "a"}, {"text": "", "label": "b"}])
    result, output = cli(*good[:3], "--train", empty, *good[5:])
    assert result.exit_code == 2 and ":2: field 'text' is empty" in output

    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "moon", "label": "a"}, {"text": "star", "label": "a"}])
    result, output = cli(*good[:3], "--train", one, *good[5:])
    assert result.exit_code == 2 and "at least two classes" in output

    # A tokenizer with other ids than the one the model was pretrained with.
    other = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    other.train_from_iterator(["zebra yak gnu " * 3], trainers.WordPieceTrainer(
        vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    other_dir = save_tokdir(other, tmp_path / "other-tok", lowercase=False, model_max_length=64)
    result, output = cli(*good, "--tokenizer", other_dir)
    assert result.exit_code == 2 and "tokenizer mismatch" in output

    result, output = cli("finetune", "--model", root / "nowhere", *good[3:])
    assert result.exit_code == 2 and "no such model folder" in output

    no_weights = tmp_path / "run-no-weights"
    shutil.copytree(setup["run"], no_weights)
    (no_weights / "model.safetensors").unlink()
    result, output = cli("finetune", "--model", no_weights, *good[3:])
    assert result.exit_code == 2 and "--from-scratch" in output

    assert isinstance(result.exception, SystemExit)  # a clean exit, not an exception escaping the command
    assert not (tmp_path / "ft").exists()


def test_device_choice(setup, tmp_path, monkeypatch):
    # --device auto takes the GPU when there is one, as pretraining does; cuda without one is a one-line refusal.
    with pytest.raises(FineTuneError, match="--device must be one of auto, cpu, cuda"):
        FineTuneConfig(device="tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device("auto") == torch.device("cuda") and training_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device("auto") == torch.device("cpu")
    result, output = cli("finetune", "--model", setup["run"], "--train", setup["train"], "--out", tmp_path / "ft",
                         "--device", "cuda", *FAST)
    assert result.exit_code == 2 and "--device cuda was asked for but no CUDA device is available" in output
    assert not (tmp_path / "ft").exists()
    # Trained wherever it was, the model comes back on the CPU, so saving and serving never need the GPU.
    data = load_task(setup["train"], setup["dev"], max_length=32)
    model = finetune(setup["run"], data, FineTuneConfig(lr=1e-3, epochs=1, batch_size=8), per_class=4).model
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_existing_output_needs_overwrite(setup, tmp_path):
    out = tmp_path / "ft"
    out.mkdir()
    (out / "something").write_text("x")
    result, output = cli("finetune", "--model", setup["run"], "--train", setup["train"], "--out", out, "--epochs", "1")
    assert result.exit_code == 2 and "--overwrite" in output


def test_finetune_on_checkpoint_imported_from_hf(setup, tmp_path):
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from gristmill.model.hf import import_hf

    ids = Tokenizer.from_file(str(setup["tokdir"] / "tokenizer.json")).get_vocab()
    vocab = sorted(ids, key=ids.__getitem__)
    hf = tmp_path / "bert"
    hf.mkdir()
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(hf / "vocab.txt")).save_pretrained(hf)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64)).save_pretrained(hf)
    run = import_hf(hf, tmp_path / "run")

    data = load_task(setup["train"], setup["dev"], setup["test"], max_length=32)
    result = finetune(run, data, FineTuneConfig(lr=1e-3, epochs=1, batch_size=8), per_class=5, seed=0)
    assert result.metrics["init"] == "pretrained" and result.metrics["train_examples"] == 15
    bert = BertForMaskedLM.from_pretrained(hf)
    # Fine-tuning moved the weights a little; the starting point was the imported BERT, not a random init.
    start = bert.bert.embeddings.word_embeddings.weight
    tuned = result.model.encoder.embeddings.word_embeddings.weight
    assert torch.allclose(start, tuned, atol=0.01) and not torch.equal(start, tuned)


def test_text_pairs_round_trip(setup, tmp_path):
    rng = random.Random(4)
    topics = list(TOPICS)
    rows = []
    for _ in range(40):
        a, b = rng.choice(topics), rng.choice(topics)
        rows.append({"text": " ".join(rng.sample(TOPICS[a], 3)), "text_b": " ".join(rng.sample(TOPICS[b], 3)),
                     "label": "same" if a == b else "different"})
    train = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "ft-pairs"
    result, output = cli("finetune", "--model", setup["run"], "--train", train, "--test", train, "--pair-field",
                         "text_b", "--out", out, "--epochs", "1", "--max-length", "16")
    assert result.exit_code == 0, output
    ft = load_finetuned(out)
    assert ft.task["pair"] is True and ft.task["text_fields"] == ["text", "text_b"]
    probs = classifier_from(ft).predict_proba([r["text"] for r in rows[:5]], pairs=[r["text_b"] for r in rows[:5]])
    assert probs.shape == (5, 2)
    with pytest.raises(PredictError, match="text pairs"):
        classifier_from(ft).predict_proba(["moon"])
