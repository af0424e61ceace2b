"""Dataset cards: `datasets.load_dataset(OUT)` reads a run folder; one schema per output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.data.schema import harmonize
from gristmill.serve.model_card import model_card
from tests.report.conftest import run, write_corpus, write_recipe


def _load(out: Path, name: str | None = None):
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(str(out), name, split="train", cache_dir=str(out.parent / "hf-cache"))


def test_load_dataset_reads_kept_and_rejected(small_run: Path) -> None:
    stats = json.loads((small_run / "stats.json").read_text())
    card = (small_run / "README.md").read_text()
    assert card.startswith("---\nlicense: other") and "config_name: rejected" in card and "exact_dedup" in card
    kept = _load(small_run)
    assert kept.num_rows == stats["totals"]["kept"] and "reason" not in kept.column_names
    rejected = _load(small_run, "rejected")
    assert rejected.num_rows == stats["totals"]["rejected"]
    assert set(rejected["reason"]) == {"length:min_chars", "exact_dedup:dup_of=d000"}


def test_everything_rejected_loads_as_default(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(write_recipe(tmp_path / "r.yaml", write_corpus(tmp_path / "c.jsonl", ["a", "b"]), out, min_chars=100))
    assert _load(out)["reason"] == ["length:min_chars"] * 2


def test_harmonize_gives_every_file_one_schema(tmp_path: Path) -> None:
    # Shard 1 has a float column, shard 2 lacks it and has an all-null column the writer typed as string.
    pq.write_table(pa.table({"id": ["a"], "text": ["x"], "score": [0.5], "lang": ["en"]}), tmp_path / "part-00000.parquet")
    pq.write_table(pa.table({"id": ["b"], "text": ["y"], "lang": pa.array([None], pa.string()),
                             "extra": pa.array([None], pa.string())}), tmp_path / "part-00001.parquet")
    pq.write_table(pa.table({"id": ["c"], "text": ["z"], "score": pa.array([None], pa.string()), "lang": ["de"]}),
                   tmp_path / "part-00002.parquet")
    assert harmonize(str(tmp_path)) == 3
    schemas = {str(pq.read_schema(p)) for p in sorted(tmp_path.glob("*.parquet"))}
    assert len(schemas) == 1
    table = pa.concat_tables(pq.read_table(p) for p in sorted(tmp_path.glob("*.parquet")))
    assert table.column_names == ["id", "text", "extra", "lang", "score"]
    assert table.schema.field("score").type == pa.float64() and table.column("score").to_pylist() == [0.5, None, None]
    assert harmonize(str(tmp_path)) == 0  # nothing left to rewrite


def test_model_card_from_json_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"vocab_size": 8000, "hidden_size": 128, "num_layers": 2,
                                                     "num_heads": 2, "intermediate_size": 512, "max_position": 512,
                                                     "type_vocab_size": 2, "name": "tiny"}))
    (run_dir / "train.json").write_text(json.dumps({"data": str(tmp_path / "tokens"), "steps": 300, "batch_size": 32,
                                                    "lr": 0.002, "schedule": "linear", "mask_prob": 0.15, "seed": 0}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 300, "loss": 5.5, "accuracy": 0.2,
                                                       "perplexity": 244.7}) + "\n")
    card = model_card(run_dir, "BertForMaskedLM")
    assert "pipeline_tag: fill-mask" in card and "| layers x hidden x heads | 2 x 128 x 2 |" in card
    assert "300 steps of 32 sequences" in card and "masked-token accuracy 0.200" in card
    # BERT-tiny has 4.4 M parameters with a 30,522 vocabulary; with 8,000 it is about 1.5 M.
    assert "| parameters (encoder, approx.) | 1.49 M |" in card and "license: other" in card
