"""perplexity: a hashed trigram model trained on trusted text scores fluent text low and junk high."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step
from gristmill.data.classify.ngram_lm import load_ngram_lm, train_ngram_lm
from gristmill.data.readers.output import read_documents
from gristmill.data.recipe import RecipeError

ROOT = Path(__file__).resolve().parents[3]
SUBJECTS = ["the library", "this package", "the server", "the program", "this tool"]
VERBS = ["reads", "writes", "converts", "checks", "prints"]
OBJECTS = ["the files", "a list of names", "the configuration", "every record", "the output"]


def fluent(rng: random.Random) -> str:
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(6))


def gibberish(rng: random.Random) -> str:
    return " ".join("".join(rng.choice("qwxzkjvbp") for _ in range(rng.randint(3, 8))) for _ in range(30))


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)
    trusted = work / "trusted.jsonl"
    trusted.write_text("".join(json.dumps({"text": fluent(rng)}) + "\n" for _ in range(300)), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "gristmill", "classify", "lm", "--input", str(trusted), "--out",
                           str(work / "lm"), "--buckets", "14"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return work / "lm"


def test_fluent_text_scores_lower_than_junk(lm: Path) -> None:
    model = load_ngram_lm(lm)
    rng = random.Random(1)
    scores = model.perplexity([fluent(rng), fluent(rng), gibberish(rng), "the the the files files files"])
    assert scores[0] < 20 and scores[1] < 20
    assert scores[2] > 10 * scores[0] and scores[3] > scores[0]
    assert np.isnan(model.perplexity(["  ..  "])[0])
    # Scoring depends on the document only, not on the batch it arrives in.
    assert model.perplexity([fluent(random.Random(9))])[0] == model.perplexity(
        [gibberish(rng), fluent(random.Random(9))])[1]


def test_step_annotates_and_optionally_rejects(lm: Path, tmp_path: Path) -> None:
    rng = random.Random(2)
    docs = [(f"f{i}", fluent(rng)) for i in range(5)] + [(f"g{i}", gibberish(rng)) for i in range(5)] + [("e", "--")]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs), encoding="utf-8")
    for name, params in (("annotate", {}), ("reject", {"threshold": 100.0})):
        step = build_step("perplexity", {"model": str(lm), "column": "ppl", **params})
        out = tmp_path / name
        Pipeline(InputSpec(paths=[str(src)], shard_size=3), [step], OutputSpec(str(out))).run(progress=False)
        kept = {d.id: d for d in read_documents(out / "kept")}
        rejected = {d.id: d for d in read_documents(out / "rejected")} if (out / "rejected").exists() else {}
        assert len(kept) + len(rejected) == len(docs)
        if name == "annotate":
            assert not rejected and kept["e"].meta.get("ppl") is None
            assert max(kept[f"f{i}"].meta["ppl"] for i in range(5)) < min(kept[f"g{i}"].meta["ppl"] for i in range(5))
        else:
            assert set(rejected) == {f"g{i}" for i in range(5)}
            assert {d.reason for d in rejected.values()} == {"perplexity:too_high"}


def test_wrong_model_folders(lm: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        build_step("perplexity", {"model": str(tmp_path / "nothing")})
    with pytest.raises(RecipeError, match="not a classifier"):
        build_step("classifier", {"model": str(lm)})
    with pytest.raises(RecipeError, match="threshold"):
        build_step("perplexity", {"model": str(lm), "threshold": -1.0})


def test_train_in_memory_matches_saved(lm: Path, tmp_path: Path) -> None:
    rng = random.Random(0)
    texts = [fluent(rng) for _ in range(50)]
    model = train_ngram_lm([texts[:20], texts[20:]], buckets=1 << 12)
    model.save(tmp_path / "m")
    again = load_ngram_lm(tmp_path / "m")
    probe = [fluent(rng), gibberish(rng)]
    assert np.allclose(model.perplexity(probe), again.perplexity(probe))
