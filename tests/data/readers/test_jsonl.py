"""JSONL: ids and fields of records, the two ways to meet a bad line, and the one JSONL reader of the project."""

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from gristmill.data.inputs import InputSpec
from gristmill.data.readers.jsonl import JsonlError, read_jsonl
from gristmill.data.readers.records import stable_id
from tests.data.reading import documents_of


def test_configurable_fields_and_stable_missing_ids(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"content": "hello there"}) + "\n" + json.dumps({"content": "again", "key": 7}) + "\n")
    spec = InputSpec(paths=[str(path)], text_field="content", id_field="key")
    docs = documents_of(spec)
    assert docs[0].id == stable_id(str(path), 1)
    assert docs[1].id == "7"
    assert documents_of(spec)[0].id == docs[0].id, "ids of documents without one must be stable across reads"


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
    src = Path(__file__).resolve().parents[3] / "src" / "gristmill"
    for name in ("serve/generate.py", "serve/perplexity.py", "train/tasks.py", "data/classify/training.py",
                 "data/dedup/decontaminate.py"):
        text = (src / name).read_text(encoding="utf-8")
        assert "json.loads(line" not in text and "json.loads(raw" not in text, name
