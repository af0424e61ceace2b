"""The ablation spec is validated completely, with one clear message, before any work starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.experiments.spec import SpecError, parse_spec, parse_tokens

ROOT = Path(__file__).resolve().parents[2]


def spec_text(tmp_path: Path, variants: str = "  raw: []\n  clean: [normalize, {gopher_quality: {min_words: 20}}]\n",
              tokens: str = "[2k, 4k]", task_train: str | None = None, extra: str = "") -> str:
    task = ROOT / "sample" / "task"
    return (f"corpus: {{paths: [{ROOT / 'sample' / 'corpus.jsonl.gz'}]}}\n"
            f"variants:\n{variants}"
            f"pretrain: {{model_size: tiny, tokens: {tokens}, seeds: [0, 1]}}\n"
            f"task: {{train: {task_train or task / 'train.jsonl'}, dev: {task / 'dev.jsonl'}, "
            f"test: {task / 'test.jsonl'}, per_class: [4, all], seeds: [0]}}\n{extra}")


def test_a_good_spec(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("input: {paths: [x]}\nsteps:\n  - normalize\n  - gopher_quality: {min_words: 40}\n"
                      "  - pii\n  - exact_dedup\n  - minhash_dedup: {threshold: 0.7}\noutput: {path: o}\n")
    variants = (f"  raw: []\n  filters: {recipe}#filters\n  dedup: {recipe}#corpus\n  middle: {recipe}#gopher_quality..pii\n"
                f"  two: {recipe}#pii,normalize\n  full: {recipe}\n"
                "  loose: {from: full, set: {gopher_quality.min_words: 10}}\n")
    spec = parse_spec(spec_text(tmp_path, variants, extra="baseline: filters\n"), "s.yaml")
    steps = {v.name: [n for n, _ in v.steps] for v in spec.variants}
    assert steps == {"raw": [], "filters": ["normalize", "gopher_quality", "pii"], "dedup": ["exact_dedup", "minhash_dedup"],
                     "middle": ["gopher_quality", "pii"], "two": ["normalize", "pii"],
                     "full": ["normalize", "gopher_quality", "pii", "exact_dedup", "minhash_dedup"],
                     "loose": ["normalize", "gopher_quality", "pii", "exact_dedup", "minhash_dedup"]}
    assert dict(spec.variant("loose").steps)["gopher_quality"] == {"min_words": 10}
    assert dict(spec.variant("full").steps)["gopher_quality"] == {"min_words": 40}  # 'from' copies
    assert spec.tokens == [2000, 4000] and spec.per_class == [4, None] and spec.baseline == "filters"
    assert spec.heldout_clean_with == "loose"  # default: the last variant


@pytest.mark.parametrize("variants, tokens, message", [
    ("  raw: []\n  bad: [normalise]\n", "[2k]", "unknown step 'normalise'"),
    ("  raw: []\n  bad: [{gopher_quality: {min_wrds: 3}}]\n", "[2k]", "no parameter 'min_wrds'"),
    ("  raw: []\n  raw: [normalize]\n", "[2k]", "duplicate variant name 'raw'"),
    ("  raw: []\n", "[0]", "must be positive"),
    ("  raw: []\n", "[2M, -1k]", "must be positive"),
    ("  raw: []\n", "[2x]", "not a token budget"),
    ("  raw: []\n", "[1k, 1000]", "repeats a budget"),
    ("  raw: []\n  a: missing.yaml#filters\n", "[2k]", "recipe file missing.yaml does not exist"),
    ("  raw: []\n  a: {from: b, set: {}}\n  b: []\n", "[2k]", "not an earlier variant"),
    ("  raw: []\n  a: {from: raw, set: {gopher_quality.min_words: 3}}\n", "[2k]", "STEP.PARAM with a step"),
])
def test_bad_specs_are_refused_with_one_message(tmp_path: Path, variants: str, tokens: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse_spec(spec_text(tmp_path, variants, tokens), "s.yaml")


def test_missing_task_file_and_unknown_sections(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="task file .*nope.jsonl \\(train\\) does not exist"):
        parse_spec(spec_text(tmp_path, task_train=str(tmp_path / "nope.jsonl")), "s.yaml")
    with pytest.raises(SpecError, match="unknown section 'pretrian'"):
        parse_spec(spec_text(tmp_path) + "pretrian: {}\n", "s.yaml")
    with pytest.raises(SpecError, match="'pretrain' has no field 'step'"):
        parse_spec(spec_text(tmp_path).replace("seeds: [0, 1]}", "seeds: [0, 1], step: 3}"), "s.yaml")
    with pytest.raises(SpecError, match="baseline 'clen' is not a variant"):
        parse_spec(spec_text(tmp_path, extra="baseline: clen\n"), "s.yaml")


def test_selector_errors_name_the_steps(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: [normalize, pii]\n")
    with pytest.raises(SpecError, match="no step 'gopher'.*normalize, pii"):
        parse_spec(spec_text(tmp_path, f"  a: {recipe}#gopher..pii\n"), "s.yaml")
    with pytest.raises(SpecError, match="comes after"):
        parse_spec(spec_text(tmp_path, f"  a: {recipe}#pii..normalize\n"), "s.yaml")


def test_token_budgets() -> None:
    assert [parse_tokens(v, "x") for v in ("500k", "2M", "1.5M", 1000, "3G")] == [500_000, 2_000_000, 1_500_000,
                                                                                   1000, 3_000_000_000]


def test_command_line_error_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text(tmp_path, "  raw: []\n  raw: [pii]\n"))
    result = subprocess.run([sys.executable, "-m", "gristmill", "ablate", str(spec), "--out", str(tmp_path / "abl")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "duplicate variant name 'raw'" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "abl").exists()
