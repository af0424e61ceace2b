"""The bias report: exact term counts on a corpus we write, intervals, kept vs rejected, and the fill-mask probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.report.bias import corpus_bias
from gristmill.report.terms import GROUPS
from tests.report.conftest import run, write_corpus, write_recipe

# 15 words; one female term (She), one male term (he); "shell", "hello", "hers-" must not count.
KEPT = "She wrote chapter {i} of the manual about the shell and hello-world and he reviewed."
REJECTED = "he, him, his"  # under 40 characters: rejected by the length step


@pytest.fixture(scope="module")
def gender_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bias")
    texts = [KEPT.format(i=i) for i in range(120)] + [REJECTED] * 4
    out = work / "out"
    run(write_recipe(work / "r.yaml", write_corpus(work / "c.jsonl", texts), out))
    return out


def test_corpus_term_rates_kept_vs_rejected(gender_run: Path) -> None:
    result = corpus_bias(str(gender_run), resamples=200)
    kept, rejected, every = (result["overall"][s] for s in ("kept", "rejected", "all"))
    assert kept["documents"] == 120 and rejected["documents"] == 4 and every["documents"] == 124
    assert kept["words"] == 120 * 15
    assert kept["groups"]["female"]["count"] == 120 and kept["groups"]["male"]["count"] == 120
    assert kept["groups"]["female"]["per_million"] == pytest.approx(1e6 / 15, abs=1e-3)
    assert rejected["groups"]["male"]["count"] == 12 and rejected["groups"]["female"]["count"] == 0
    # Every kept document holds exactly one term of each: every resample has the same ratio.
    assert kept["ratios"]["female/male"] == {"value": 1.0, "ci95": [1.0, 1.0]}
    lo, hi = every["groups"]["male"]["ci95"]
    assert lo <= every["groups"]["male"]["per_million"] <= hi
    # Cleaning removed only male terms: the kept corpus has fewer male terms per word than the input.
    assert result["kept_shift"]["male"]["kept_minus_all_per_million"] < 0
    assert set(result["per_value"]) == {"docs", "web"}  # 62 documents per source
    assert {g["group"] for g in result["term_groups"]} == {g.group for g in GROUPS}
    assert all(g["source"] for g in result["term_groups"])
    assert corpus_bias(str(gender_run), resamples=200) == result  # deterministic


def test_bias_cli_with_model_probe(gender_run: Path, tmp_path: Path) -> None:
    from tests.serve.conftest import build_tiny_mlm_run

    model = build_tiny_mlm_run(tmp_path)
    result = CliRunner().invoke(app, ["bias", str(gender_run), "--model", str(model), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    report = json.loads((gender_run / "bias.json").read_text())
    probe = report["model_probe"]
    assert probe["overall"]["pairs"] == len(probe["pairs"]) >= 30
    assert all(p["shared_tokens"] > 0 and p["pll_stereotyped"] < 0 for p in probe["pairs"])
    assert 0 <= probe["overall"]["stereotype_rate"] <= 1 and "does not measure" not in probe["measures"]
    assert "Does not measure" in result.output and "prefers stereotyped" in result.output
    bad = CliRunner().invoke(app, ["bias", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "no stats.json" in bad.output and "Traceback" not in bad.output


def test_pseudo_log_likelihood_batches_like_one_at_a_time(tmp_path: Path) -> None:
    import torch

    from gristmill.report.probe import pseudo_log_likelihood
    from gristmill.tokenizer import load_tokenizer, special_ids
    from gristmill.train.checkpoint import load_run
    from tests.serve.conftest import build_tiny_mlm_run

    model, _, tokdir = load_run(build_tiny_mlm_run(tmp_path))
    ids = load_tokenizer(tokdir).encode("the astronaut landed on the moon").ids
    mask = special_ids(tokdir)["mask"]
    positions = list(range(1, len(ids) - 1))
    one_by_one = 0.0
    for p in positions:
        masked = list(ids)
        masked[p] = mask
        with torch.no_grad():
            logits = model(torch.tensor([masked]))[0, p]
        one_by_one += float(logits.log_softmax(-1)[ids[p]])
    assert pseudo_log_likelihood(model, ids, positions, mask) == pytest.approx(one_by_one, abs=1e-4)
