"""`gristmill rescore`: re-deciding from stored values gives exactly the output of a fresh run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.data.inputs import InputSpec
from gristmill.data.recipe import build_step
from gristmill.data.rescore import RescoreError, compare_outputs, rescore
from gristmill.data.run import OutputSpec, Pipeline
from gristmill.data.steps.quality import FineWebQuality, GopherQuality, GopherRepetition
from tests.sample import write_sample_head

STEPS = [("normalize", {}), ("gopher_repetition", {"annotate": True}), ("gopher_quality", {"annotate": True}),
         ("pii", {}), ("fineweb_quality", {"annotate": True})]


def _run(corpus: Path, out: Path, changes: dict[str, dict] | None = None) -> Path:
    steps = [build_step(name, {**params, **(changes or {}).get(name, {})}) for name, params in STEPS]
    Pipeline(InputSpec(paths=[str(corpus)]), steps, OutputSpec(str(out), format="parquet"), batch_size=100).run(
        progress=False)
    return out


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("rescore")
    corpus = write_sample_head(tmp / "corpus.jsonl", 400)
    return corpus, _run(corpus, tmp / "base")


@pytest.mark.parametrize("step, changes", [
    ("gopher_quality", {"min_words": 30}),                          # looser: documents come back
    ("gopher_quality", {"min_words": 120, "min_stop_words": 3}),    # stricter: kept ones are rejected
    ("gopher_repetition", {"dup_line_frac": 0.1, "dup_n_grams": [[5, 0.1], [6, 0.1], [7, 0.1], [8, 0.1], [9, 0.1],
                                                                  [10, 0.1]]}),
    ("fineweb_quality", {"short_line_thr": 0.5}),                   # the last step
])
def test_rescore_equals_a_fresh_run(annotated: tuple[Path, Path], tmp_path: Path, step: str, changes: dict) -> None:
    corpus, base = annotated
    fresh = _run(corpus, tmp_path / "fresh", {step: changes})
    stats = rescore(base, {f"{step}.{k}": v for k, v in changes.items()}, tmp_path / "rescored")
    assert stats["totals"]["changed_decisions"] > 0  # the case really moves documents
    result = compare_outputs(fresh, tmp_path / "rescored")
    assert result["identical"], result
    # The rescored run can itself be rescored (it records its own recipe).
    rescore(tmp_path / "rescored", {f"{step}.skip": []}, tmp_path / "again")


def test_stored_values_decide_like_the_filter(annotated: tuple[Path, Path]) -> None:
    """decide(stored columns) fires the same rules as measuring again, for every rule (not only the first)."""
    from gristmill.data.readers.output import read_documents

    _, base = annotated
    filters = [GopherQuality(min_words=80, min_stop_words=4), GopherRepetition(dup_line_frac=0.05),
               FineWebQuality(short_line_thr=0.3)]
    checked = 0
    for doc in read_documents(base / "kept"):
        for f in filters:
            f.annotate = True
            values: dict[str, float] = {}
            expected = list(f.verdicts(doc.text, "en", values))
            assert list(f.decide(values, "en")) == expected
            checked += 1
    assert checked > 100


def test_rescore_refuses_what_it_cannot_redo(annotated: tuple[Path, Path], tmp_path: Path) -> None:
    _, base = annotated
    with pytest.raises(RescoreError, match="only thresholds"):
        rescore(base, {"gopher_quality.stop_words": ["the"]}, tmp_path / "a")
    with pytest.raises(RescoreError, match="one step at a time"):
        rescore(base, {"gopher_quality.min_words": 3, "fineweb_quality.short_line_thr": 0.5}, tmp_path / "b")
    with pytest.raises(RescoreError, match="does not occur"):
        rescore(base, {"c4_quality.min_sentences": 3}, tmp_path / "c")
    with pytest.raises(RescoreError, match="did not store"):
        plain = tmp_path / "plain"
        Pipeline(InputSpec(paths=[str(annotated[0])]), [build_step("gopher_quality", {})],
                 OutputSpec(str(plain))).run(progress=False)
        rescore(plain, {"gopher_quality.min_words": 3}, tmp_path / "d")


def test_rescore_command_line(annotated: tuple[Path, Path], tmp_path: Path) -> None:
    _, base = annotated
    ok = subprocess.run([sys.executable, "-m", "gristmill", "rescore", str(base), "--set", "gopher_quality.min_words=30",
                         "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "decisions changed" in ok.stderr
    bad = subprocess.run([sys.executable, "-m", "gristmill", "rescore", str(base), "--set", "min_words=30",
                          "--out", str(tmp_path / "s")], capture_output=True, text=True)
    assert bad.returncode == 2 and "STEP.PARAM=VALUE" in bad.stderr and "Traceback" not in bad.stderr
