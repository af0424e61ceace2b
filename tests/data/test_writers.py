"""Writers: atomic output shards, columns in order, readable back."""

from pathlib import Path

import pyarrow.parquet as pq

from gristmill.data.document import Document
from gristmill.data.readers.output import read_documents
from gristmill.data.writers import write_documents


def test_writers_are_atomic_and_readable(tmp_path: Path) -> None:
    docs = [Document("a", "text a", {"lang": "en", "score": 0.5}), Document("b", "text b", {"lang": None, "score": 1})]
    write_documents(docs, tmp_path / "out" / "part-00000.parquet")
    write_documents(docs, tmp_path / "out2" / "part-00000.jsonl", "jsonl")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["part-00000.parquet"], "no temporary files may remain"
    table = pq.read_table(tmp_path / "out" / "part-00000.parquet")
    assert table.column_names == ["id", "text", "lang", "score"]
    back = list(read_documents(tmp_path / "out2"))
    assert [d.id for d in back] == ["a", "b"] and back[0].meta["lang"] == "en"
