"""Parquet, folders of text files and WARC: each read into documents with its metadata."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.data.inputs import InputSpec
from tests.data.reading import documents_of


def test_parquet_and_text_folder_readers(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["one", "two", "three"], "lang": ["en"] * 3}), tmp_path / "p.parquet")
    docs = documents_of(InputSpec(paths=[str(tmp_path / "p.parquet")], shard_size=2))
    assert [d.text for d in docs] == ["one", "two", "three"] and docs[0].meta["lang"] == "en"
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha text")
    (folder / "sub" / "b.md").write_text("beta text")
    docs = documents_of(InputSpec(paths=[str(folder)], format="text"))
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
    docs = documents_of(InputSpec(paths=[str(path)]))
    assert len(docs) == 3
    assert "Paragraph of real text number 1" in docs[1].text and "<p>" not in docs[1].text
    assert docs[1].meta["url"] == "https://site.example/1"
