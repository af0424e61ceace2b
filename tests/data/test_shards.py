"""Cutting inputs into shards: record ranges that read back every record once, in order."""

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from gristmill.data.inputs import InputSpec
from gristmill.data.readers import read_shard
from gristmill.data.shards import plan_shards
from tests.data.reading import documents_of


def _lines(n: int) -> list[str]:
    return [json.dumps({"id": f"d{i}", "text": f"document number {i}", "url": f"https://x.example/{i}"}) for i in range(n)]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_readers_compressed_and_sharded(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    data = ("\n".join(_lines(25)) + "\n").encode()
    if suffix == ".jsonl.gz":
        data = gzip.compress(data)
    elif suffix == ".jsonl.zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    spec = InputSpec(paths=[str(path)], shard_size=10)
    plan = plan_shards(spec)
    assert [(s.start, s.stop) for s in plan.shards] == [(0, 10), (10, 20), (20, 25)]
    docs = documents_of(spec)
    assert [d.id for d in docs] == [f"d{i}" for i in range(25)]
    assert docs[3].meta == {"url": "https://x.example/3"}


def test_plain_jsonl_shards_seek_to_exact_records(tmp_path: Path) -> None:
    import random

    rng = random.Random(1)
    lines = [json.dumps({"id": str(i), "text": "x" * rng.randint(1, 300_000)}) for i in range(37)]
    (tmp_path / "p.jsonl").write_text("\n".join(lines))  # no newline at the end
    spec = InputSpec(paths=[str(tmp_path / "p.jsonl")], shard_size=5)
    plan = plan_shards(spec)
    assert all(s.byte_offset is not None for s in plan.shards)
    assert [d.id for s in plan.shards for d in read_shard(s, spec)] == [str(i) for i in range(37)]


def test_compressed_jsonl_is_staged_once_and_names_the_original(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(_lines(23)) + "\n{bad json\n").encode()))
    spec = InputSpec(paths=[str(path)], shard_size=10)
    plan = plan_shards(spec, staging=tmp_path / "staging")
    assert len(plan.shards) == 3 and all(s.origin == str(path) for s in plan.shards)
    docs = [d for s in plan.shards for d in read_shard(s, spec)]
    assert [d.id for d in docs[:23]] == [f"d{i}" for i in range(23)]
    assert docs[23].reason == "input:invalid_json" and docs[23].detail.startswith(f"{path}:24:")
    assert plan_shards(spec, staging=tmp_path / "staging").shards == plan.shards, "a resumed plan reuses the chunks"
