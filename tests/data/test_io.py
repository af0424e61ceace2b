import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from gristmill.data.document import Document
from gristmill.data.io import (
    InputSpec,
    JsonlError,
    plan_shards,
    read_documents,
    read_jsonl,
    read_shard,
    stable_id,
    write_documents,
)


def _docs(spec: InputSpec) -> list[Document]:
    plan = plan_shards(spec)
    assert not plan.errors, plan.errors
    return [d for shard in plan.shards for d in read_shard(shard, spec)]


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
    docs = _docs(spec)
    assert [d.id for d in docs] == [f"d{i}" for i in range(25)]
    assert docs[3].meta == {"url": "https://x.example/3"}


def test_configurable_fields_and_stable_missing_ids(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"content": "hello there"}) + "\n" + json.dumps({"content": "again", "key": 7}) + "\n")
    spec = InputSpec(paths=[str(path)], text_field="content", id_field="key")
    docs = _docs(spec)
    assert docs[0].id == stable_id(str(path), 1)
    assert docs[1].id == "7"
    assert _docs(spec)[0].id == docs[0].id, "ids of documents without one must be stable across reads"


def test_parquet_and_text_folder_readers(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["one", "two", "three"], "lang": ["en"] * 3}), tmp_path / "p.parquet")
    docs = _docs(InputSpec(paths=[str(tmp_path / "p.parquet")], shard_size=2))
    assert [d.text for d in docs] == ["one", "two", "three"] and docs[0].meta["lang"] == "en"
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha text")
    (folder / "sub" / "b.md").write_text("beta text")
    docs = _docs(InputSpec(paths=[str(folder)], format="text"))
    assert sorted(d.meta["source_file"] for d in docs) == ["a.txt", "sub/b.md"]


def test_warc_reader_extracts_html(tmp_path: Path) -> None:
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "pages.warc.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for i in range(3):
            html = f"<html><body><nav>Menu</nav><article><h1>Title {i}</h1><p>Paragraph of real text number {i}, long enough to be main content.</p></article></body></html>"
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(f"https://site.example/{i}", "response",
                                                          payload=BytesIO(html.encode()), http_headers=headers))
    docs = _docs(InputSpec(paths=[str(path)]))
    assert len(docs) == 3
    assert "Paragraph of real text number 1" in docs[1].text and "<p>" not in docs[1].text
    assert docs[1].meta["url"] == "https://site.example/1"


def test_writers_are_atomic_and_readable(tmp_path: Path) -> None:
    docs = [Document("a", "text a", {"lang": "en", "score": 0.5}), Document("b", "text b", {"lang": None, "score": 1})]
    write_documents(docs, tmp_path / "out" / "part-00000.parquet")
    write_documents(docs, tmp_path / "out2" / "part-00000.jsonl", "jsonl")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["part-00000.parquet"], "no temporary files may remain"
    table = pq.read_table(tmp_path / "out" / "part-00000.parquet")
    assert table.column_names == ["id", "text", "lang", "score"]
    back = list(read_documents(tmp_path / "out2"))
    assert [d.id for d in back] == ["a", "b"] and back[0].meta["lang"] == "en"


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


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_read_jsonl_modes_raise_and_record(tmp_path: Path, suffix: str) -> None:
    body = b'\xef\xbb\xbf{"a": 1}\n\n{"a": \n"just a string"\n{"a": "caf\xe9"}\n'
    path = tmp_path / f"x{suffix}"
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else
                     zstandard.ZstdCompressor().compress(body) if suffix.endswith(".zst") else body)
    lines = list(read_jsonl(path, errors="record"))
    assert [(line.number, line.record, line.problem and line.problem[0]) for line in lines] == [
        (1, {"a": 1}, None), (3, None, "invalid_json"), (4, "just a string", None), (5, None, "invalid_utf8")]
    with pytest.raises(JsonlError, match=rf"x{suffix.replace('.', '[.]')}:3: invalid JSON") as info:
        list(read_jsonl(path))
    assert "\n" not in str(info.value)
    with pytest.raises(JsonlError, match="no such file"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_damaged_gzip_is_one_line_when_raising_and_a_last_problem_when_recording(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(5000)))[:-40])
    with pytest.raises(JsonlError, match="the file is damaged"):
        list(read_jsonl(path))
    assert list(read_jsonl(path, errors="record"))[-1].problem[0] == "damaged"


def test_the_jsonl_readers_of_other_packages_use_this_one() -> None:
    # generate's prompts, perplexity's documents, task files, classifier training data and decontamination
    # examples: none parses JSONL lines itself.
    src = Path(__file__).resolve().parents[2] / "src" / "gristmill"
    for name in ("serve/generate.py", "serve/perplexity.py", "train/tasks.py", "data/classify/training.py",
                 "data/dedup/decontaminate.py"):
        text = (src / name).read_text(encoding="utf-8")
        assert "json.loads(line" not in text and "json.loads(raw" not in text, name
