import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gristmill.data import Document, InputSpec, OutputSpec, Pipeline, StepStats, build_step, read_documents
from gristmill.data.pipeline import Step, run_steps, split_stages
from tests.data.step_fixtures import DropRepeated, Sleepy


def _corpus(path: Path, n: int = 300) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            # every 10th text repeats the text of document 0
            text = "the same text again" if i % 10 == 0 else f"unique text number {i}"
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return path


def test_run_steps_accounts_for_every_document() -> None:
    docs = [Document(str(i), "x" * i) for i in range(10)]
    docs[0].reject("input", "empty_text")
    stats = [StepStats()]
    kept, rejected = run_steps(docs, [build_step("length", {"min_chars": 5})], stats)
    assert len(kept) + len(rejected) == 10
    assert stats[0].docs_in == 9 and stats[0].rejected["length:min_chars"] == 4


def test_a_step_that_drops_documents_is_caught() -> None:
    class Dropper(Step):
        name = "dropper"

        def process(self, docs, stats):  # type: ignore[no-untyped-def]
            return docs[1:]

    with pytest.raises(AssertionError, match="must not drop"):
        run_steps([Document("a", "a"), Document("b", "b")], [Dropper()], [StepStats()])


def test_corpus_step_cuts_stages() -> None:
    a, b, c = build_step("noop", {}), DropRepeated(), build_step("length", {})
    assert split_stages([a, b, c]) == [[a], [b, c]]


@pytest.mark.parametrize("workers", [1, 2])
def test_corpus_step_sees_whole_corpus(tmp_path: Path, workers: int) -> None:
    corpus = _corpus(tmp_path / "c.jsonl")
    steps = [Sleepy(seconds=0.0), DropRepeated(), build_step("length", {"min_chars": 5})]
    pipe = Pipeline(InputSpec(paths=[str(corpus)], shard_size=40), steps, OutputSpec(str(tmp_path / "out")))
    result = pipe.run(workers=workers, progress=False)
    kept = {d.id for d in read_documents(tmp_path / "out" / "kept")}
    rejected = {d.id: d.reason for d in read_documents(tmp_path / "out" / "rejected")}
    assert len(kept) + len(rejected) == 300 == result.docs_in
    assert rejected["d10"] == "drop_repeated:repeated"
    assert "d7" in rejected and rejected["d7"] == "sleepy:ends_in_7"
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["steps"][1]["counters"]["repeated_texts"] == 1
    assert not (tmp_path / "out" / "_work" / "stage1" / "kept").exists(), "intermediate shards are cleaned up"


def test_python_api_matches_recipe(tmp_path: Path) -> None:
    from gristmill.data import parse_recipe

    corpus = _corpus(tmp_path / "c.jsonl", 50)
    recipe = parse_recipe(f"input: {{paths: {corpus}}}\nsteps:\n  - length: {{min_chars: 20}}\noutput: {{path: {tmp_path / 'a'}}}\n")
    direct = Pipeline(InputSpec(paths=[str(corpus)]), [build_step("length", {"min_chars": 20})], OutputSpec(str(tmp_path / "b")))
    ra, rb = recipe.run(progress=False), direct.run(progress=False)
    assert (ra.kept, ra.rejected) == (rb.kept, rb.rejected)


REPO = Path(__file__).resolve().parents[2]
REAL_CORPORA = [REPO / "sample" / "corpus.jsonl.gz", REPO.parent / "shared" / "data" / "corpus" / "docs.jsonl.gz"]


@pytest.mark.parametrize("corpus", REAL_CORPORA, ids=["sample", "shared"])
def test_real_corpus_trivial_recipe_accounts_for_everything(tmp_path: Path, corpus: Path) -> None:
    if not corpus.exists():
        pytest.skip(f"{corpus} not present (the bundled sample always is)")
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        lines = sum(1 for line in f if line.strip())
    pipe = Pipeline(InputSpec(paths=[str(corpus)]), [build_step("length", {"min_chars": 100})], OutputSpec(str(tmp_path / "o")))
    result = pipe.run(workers=2, progress=False)
    assert result.docs_in == lines == result.kept + result.rejected
    assert result.kept > 0 and result.rejected > 0
    kept = pq.read_table(tmp_path / "o" / "kept", columns=["id"]).column("id").to_pylist()
    rejected = pq.read_table(tmp_path / "o" / "rejected", columns=["id"]).column("id").to_pylist()
    assert len(set(kept) | set(rejected)) == len(kept) + len(rejected)


def test_output_loads_with_hf_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    corpus = _corpus(tmp_path / "c.jsonl", 120)
    Pipeline(InputSpec(paths=[str(corpus)], shard_size=50), [build_step("noop", {})], OutputSpec(str(tmp_path / "o"))).run(progress=False)
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "o" / "kept" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 120 and set(ds.column_names) == {"id", "text"}


def test_resume_of_a_completed_multistage_run_is_a_no_op(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 100)
    steps = [build_step("noop", {}), DropRepeated()]
    first = Pipeline(InputSpec(paths=[str(corpus)], shard_size=30), steps, OutputSpec(str(tmp_path / "o"))).run(progress=False)
    again = Pipeline(InputSpec(paths=[str(corpus)], shard_size=30), steps, OutputSpec(str(tmp_path / "o"))).run(resume=True, progress=False)
    assert (again.docs_in, again.kept, again.rejected) == (first.docs_in, first.kept, first.rejected)


def test_several_compressed_files_are_staged_in_parallel(tmp_path: Path) -> None:
    import gzip

    for k in range(3):
        with gzip.open(tmp_path / f"c{k}.jsonl.gz", "wt") as f:
            for i in range(40):
                f.write(json.dumps({"id": f"f{k}-{i}", "text": f"text {k} {i}"}) + "\n")
    pipe = Pipeline(InputSpec(paths=[str(tmp_path / "c*.jsonl.gz")], shard_size=15), [build_step("noop", {})],
                    OutputSpec(str(tmp_path / "o")))
    result = pipe.run(workers=2, progress=False)
    ids = sorted(d.id for d in read_documents(tmp_path / "o" / "kept"))
    assert result.kept == 120 and ids == sorted(f"f{k}-{i}" for k in range(3) for i in range(40))
    assert not (tmp_path / "o" / "_work" / "input").exists()


def test_a_corpus_step_may_be_the_first_step() -> None:
    dedup, drop = build_step("exact_dedup", {}), DropRepeated()
    assert split_stages([dedup]) == [[], [dedup]]  # stage 1 only reads and stages the input
    assert split_stages([dedup, drop]) == [[], [dedup], [drop]]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dedup_only_recipe_runs(tmp_path: Path, workers: int) -> None:
    from typer.testing import CliRunner

    from gristmill.cli import app

    corpus = _corpus(tmp_path / "c.jsonl", n=100)
    recipe = tmp_path / "dedup.yaml"
    recipe.write_text(f"input: {{paths: [{str(corpus)!r}], shard_size: 30}}\nsteps:\n  - exact_dedup\n"
                      f"output: {{path: {str(tmp_path / 'out')!r}}}\n")
    result = CliRunner().invoke(app, ["run", str(recipe), "--workers", str(workers), "--no-progress"])
    assert result.exit_code == 0, result.output
    kept = {d.id for d in read_documents(tmp_path / "out" / "kept")}
    rejected = {d.id: d.reason for d in read_documents(tmp_path / "out" / "rejected")}
    assert len(kept) == 91 and len(rejected) == 9 and "d0" in kept  # the first of ten identical texts stays
    assert all(reason.startswith("exact_dedup:") for reason in rejected.values())
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert [s["name"] for s in stats["steps"]] == ["exact_dedup"]
    assert stats["steps"][0]["docs_in"] == 100 and stats["totals"]["kept"] == 91


def test_run_json_and_quiet(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gristmill import verbosity
    from gristmill.cli import app

    corpus = _corpus(tmp_path / "c.jsonl", n=50)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"input: {{paths: [{str(corpus)!r}]}}\nsteps:\n  - exact_dedup\n"
                      f"output: {{path: {str(tmp_path / 'out')!r}}}\n")
    try:
        result = CliRunner().invoke(app, ["-q", "run", str(recipe), "--json"])
    finally:
        verbosity.set_level()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    assert summary["docs_in"] == 50 and summary["kept"] == 46 and summary["rejected"] == 4
    assert summary["exit_code"] == 0 and Path(summary["stats_path"]).is_file() and Path(summary["report"]).is_file()
    assert result.stderr.strip() == ""  # -q: no progress bar, no info lines
    noisy = CliRunner().invoke(app, ["run", str(recipe), "--overwrite", "--no-progress"])
    assert noisy.exit_code == 0 and "kept:" in noisy.stderr and "exact_dedup" in noisy.stdout  # the summary table
