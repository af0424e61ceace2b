"""classify train + the classifier step: a linear model saved without pickle, scored in chunks,
columns named by the user, reject or annotate, and clear errors for missing or wrong model folders."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step
from gristmill.data.classify.linear import load_linear
from gristmill.data.classify.scorers import chunk_text, folder_kind
from gristmill.data.classify.training import TrainingDataError, train_folder
from gristmill.data.readers.output import read_documents
from gristmill.data.recipe import RecipeError

ROOT = Path(__file__).resolve().parents[3]
RUDE = ["idiot", "stupid", "moron", "dumb", "loser", "jerk", "trash", "pathetic"]
NICE = ["kind", "thanks", "lovely", "helpful", "great", "friendly", "welcome", "pleasant"]
FILLER = ["the", "package", "provides", "library", "for", "reading", "files", "and", "tools", "version"]


def sentence(rng: random.Random, vocab: list[str], n: int = 12) -> str:
    return " ".join(rng.choice(vocab + FILLER) for _ in range(n))


def write(path: Path, texts: list[str], **extra: str) -> str:
    path.write_text("".join(json.dumps({"text": t, **extra}) + "\n" for t in texts), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("qc")
    rng = random.Random(0)
    pos = write(work / "pos.jsonl", [sentence(rng, RUDE) for _ in range(150)])
    neg = write(work / "neg.jsonl", [sentence(rng, NICE) for _ in range(150)])
    test = work / "test.jsonl"
    test.write_text("".join(json.dumps({"text": sentence(rng, v), "label": lab}) + "\n"
                            for v, lab in [(RUDE, "toxic"), (NICE, "clean")] * 20), encoding="utf-8")
    metrics = train_folder(work / "qc", positive=[pos], negative=[neg], positive_label="toxic",
                           negative_label="clean", eval_file=str(test))
    assert metrics["eval"]["toxic"]["precision"] > 0.9 and metrics["eval"]["toxic"]["recall"] > 0.9
    return work / "qc"


def run(tmp_path: Path, docs: list[tuple[str, str]], steps: list[tuple[str, dict]], name: str = "out",
        workers: int = 1) -> tuple[dict, dict, dict]:
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs), encoding="utf-8")
    out = tmp_path / name
    result = Pipeline(InputSpec(paths=[str(src)], shard_size=4), [build_step(n, p) for n, p in steps],
                      OutputSpec(str(out))).run(workers=workers, progress=False)
    kept = {d.id: d for d in read_documents(out / "kept")}
    rejected = {d.id: d for d in read_documents(out / "rejected")} if (out / "rejected").exists() else {}
    assert len(kept) + len(rejected) == len(docs)
    return kept, rejected, result.stats


def test_model_folder_is_safetensors_and_json_and_round_trips(model: Path) -> None:
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "metrics.json", "weights.safetensors"]
    config = json.loads((model / "config.json").read_text())
    assert config["kind"] == "gristmill-linear" and config["labels"] == ["clean", "toxic"]
    assert config["vectorizer"]["ngram_range"] == [1, 2]
    clf = load_linear(model)
    p = clf.predict_proba(["you stupid idiot moron", "thanks, lovely and helpful"])
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1)
    assert p[0, 1] > 0.5 > p[1, 1]
    assert folder_kind(model) == "linear"


def test_step_rejects_by_threshold_and_names_columns(model: Path, tmp_path: Path) -> None:
    rng = random.Random(1)
    docs = [(f"t{i}", sentence(rng, RUDE, 30)) for i in range(6)] + [(f"n{i}", sentence(rng, NICE, 30)) for i in range(6)]
    step = ("classifier", {"model": str(model), "columns": {"toxic": "toxic_score"}, "reject_label": "toxic"})
    kept, rejected, stats = run(tmp_path, docs, [step])
    assert set(rejected) == {f"t{i}" for i in range(6)}
    assert {d.reason for d in rejected.values()} == {"classifier:toxic"}
    assert all(d.meta["toxic_score"] < 0.5 for d in kept.values())
    assert all("clean_score" not in d.meta for d in kept.values())
    # Annotate only: the same scores, nothing rejected, the would-be rejections counted.
    annotate = ("classifier", {"model": str(model), "reject_label": "toxic", "mode": "annotate"})
    kept2, rejected2, stats2 = run(tmp_path, docs, [annotate], name="annotate")
    assert not rejected2 and stats2["steps"][0]["counters"]["would_reject"] == 6
    assert {"toxic_score", "clean_score"} <= set(kept2["t0"].meta)
    # A quality-style filter: reject what scores *below* the threshold on a label.
    keep_nice = ("classifier", {"model": str(model), "reject_label": "clean", "reject_below": True})
    kept3, _, _ = run(tmp_path, docs, [keep_nice], name="below")
    assert set(kept3) == {f"n{i}" for i in range(6)}


def test_long_documents_are_chunked_and_aggregated(model: Path, tmp_path: Path) -> None:
    rng = random.Random(2)
    # One rude passage after 600 neutral-to-nice words: only chunks beyond the first see it.
    long_doc = " ".join(sentence(rng, NICE, 600).split()) + " " + sentence(rng, RUDE, 40)
    docs = [("long", long_doc)]
    base = {"model": str(model), "reject_label": "toxic", "chunk_words": 100}
    _, rejected, _ = run(tmp_path, docs, [("classifier", {**base, "aggregate": "max"})], name="max")
    assert "long" in rejected
    kept, _, _ = run(tmp_path, docs, [("classifier", {**base, "aggregate": "first"})], name="first")
    assert "long" in kept
    # Past max_chunks * chunk_words words nothing is read.
    kept, _, _ = run(tmp_path, docs, [("classifier", {**base, "max_chunks": 3})], name="cut")
    assert "long" in kept
    assert chunk_text("a b c d e", 2, 2) == ["a b", "c d"]
    assert chunk_text("", 2, 2) == [""]
    assert chunk_text("a b c\n\nd\n \ne f g h", 3, 10, "paragraphs") == ["a b c", "d", "e f g", "h"]
    # One short rude paragraph inside a long page: alone in its chunk, it is not diluted.
    page = "\n\n".join([sentence(rng, NICE, 50), sentence(rng, RUDE, 8), sentence(rng, NICE, 50)])
    _, rejected, _ = run(tmp_path, [("page", page)], [("classifier", {**base, "chunk_words": 256,
                                                                        "chunk_by": "paragraphs"})], name="para")
    assert "page" in rejected


def test_same_decisions_with_worker_processes(model: Path, tmp_path: Path) -> None:
    rng = random.Random(3)
    docs = [(f"d{i}", sentence(rng, RUDE if i % 3 else NICE, 20)) for i in range(24)]
    step = ("classifier", {"model": str(model), "reject_label": "toxic"})
    one = run(tmp_path, docs, [step], name="w1")
    two = run(tmp_path, docs, [step], name="w2", workers=2)
    assert set(one[1]) == set(two[1])
    assert {k: v.meta["toxic_score"] for k, v in one[0].items()} == {k: v.meta["toxic_score"] for k, v in two[0].items()}


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: d, "not a model folder"),
    (lambda d: (d / "config.json").write_text('{"kind": "something-else"}') and d, "not a model folder"),
    (lambda d: (d / "config.json").write_text("{not json") and d, "not readable JSON"),
    (lambda d: (d / "task.json").write_text('{"labels": ["a", "b"]}') and d, "no tokenizer"),
])
def test_missing_or_wrong_model_folder_fails_before_any_work(tmp_path: Path, make, message: str) -> None:
    folder = make(tmp_path)
    with pytest.raises(RecipeError, match=message):
        build_step("classifier", {"model": str(folder)})


def test_unknown_label_and_wrong_kind(model: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="has labels clean, toxic; not spam"):
        build_step("classifier", {"model": str(model), "reject_label": "spam"})
    with pytest.raises(RecipeError, match="not a language model"):
        build_step("perplexity", {"model": str(model)})
    with pytest.raises(RecipeError, match="give the model folder"):
        build_step("classifier", {})


@pytest.mark.slow
def test_cli_train_and_a_run_with_a_wrong_folder(model: Path, tmp_path: Path) -> None:
    rng = random.Random(4)
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": sentence(rng, v), "y": lab}) + "\n"
                                for v, lab in [(RUDE, "bad"), (NICE, "good")] * 30), encoding="utf-8")
    env_cmd = [sys.executable, "-m", "gristmill"]
    done = subprocess.run([*env_cmd, "classify", "train", "--input", str(labelled), "--label-field", "y",
                           "--out", str(tmp_path / "m"), "--eval", str(labelled)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["eval"]["accuracy"] > 0.9
    again = subprocess.run([*env_cmd, "classify", "train", "--input", str(labelled), "--label-field", "y",
                            "--out", str(tmp_path / "m")], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"input: {{paths: [{labelled}]}}\nsteps:\n  - classifier: {{model: {tmp_path / 'nope'}}}\n"
                      f"output: {{path: {tmp_path / 'out'}}}\n")
    bad = subprocess.run([*env_cmd, "run", str(recipe)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "out").exists()


def test_training_data_errors(tmp_path: Path) -> None:
    one = write(tmp_path / "one.jsonl", ["a b c"], label="x")
    with pytest.raises(TrainingDataError, match="one label"):
        train_folder(tmp_path / "m", inputs=[one])
    with pytest.raises(TrainingDataError, match="--positive and --negative files"):
        train_folder(tmp_path / "m", positive=[one])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": "a"}\nnot json\n')
    with pytest.raises(TrainingDataError, match="bad.jsonl:2: invalid JSON"):
        train_folder(tmp_path / "m", inputs=[str(bad)])


def test_web_en_classifier_recipe_runs(model: Path, tmp_path: Path) -> None:
    """recipes/web-en-classifier.yaml with its two model folders made here: it loads and runs on sample docs."""
    import gzip

    from gristmill.data.classify.ngram_lm import train_ngram_lm
    from gristmill.data.recipe import load_recipe

    rng = random.Random(5)
    toxic = tmp_path / "toxicity-qc"
    train_folder(toxic, positive=[write(tmp_path / "p.jsonl", [sentence(rng, RUDE) for _ in range(60)])],
                 negative=[write(tmp_path / "n.jsonl", [sentence(rng, NICE) for _ in range(60)])],
                 positive_label="offensive", negative_label="clean")
    with gzip.open(ROOT / "sample" / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(60), f)]
    train_ngram_lm([[r["text"] for r in rows]], buckets=1 << 12).save(tmp_path / "trusted-lm")
    sample = tmp_path / "sample.jsonl"
    sample.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    text = (ROOT / "recipes" / "web-en-classifier.yaml").read_text(encoding="utf-8")
    assert "runs/toxicity-qc" in text and "runs/trusted-lm" in text
    text = text.replace("runs/toxicity-qc", str(toxic)).replace("runs/trusted-lm", str(tmp_path / "trusted-lm"))
    text = text.replace("sample/task/", str(ROOT / "sample" / "task") + "/")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text, encoding="utf-8")
    pipeline = load_recipe(recipe, output_override=str(tmp_path / "out"), input_override=[str(sample)])
    names = [s.name for s in pipeline.steps]
    assert names.index("blocklist") < names.index("classifier") < names.index("exact_dedup")
    result = pipeline.run(progress=False)
    assert result.kept + result.rejected == len(rows)
    kept = list(read_documents(tmp_path / "out" / "kept"))
    assert kept and all("toxic_score" in d.meta and "perplexity" in d.meta for d in kept)
