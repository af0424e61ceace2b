"""Principles 3 and 6 (HTML): damaged WARC containers are reported with file and offset (exit 3), never
merged or silently shortened; HTML too deeply nested to extract in bounded time is rejected first."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path

import pytest

from gristmill.data.inputs import InputSpec
from gristmill.data.readers import read_shard
from gristmill.data.readers.html import html_problem
from gristmill.data.readers.output import read_documents
from gristmill.data.shards import Shard
from tests.data.hostile import invoke, write_recipe

N = 10


def _warc(n: int = N, gz: bool = False, html: str | None = None) -> bytes:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gz)
    for i in range(n):
        body = (html or f"<html><body><p>Page number {i} of the test archive, with a sentence of text.</p></body></html>")
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(f"https://site.example/{i}", "response",
                                                      payload=io.BytesIO(body.encode()), http_headers=http))
    return buf.getvalue()


def _content_length_times(data: bytes, factor: float, record: int = 0) -> bytes:
    start = -1
    for _ in range(record + 1):
        start = data.index(b"WARC/1.", start + 1)
    at = data.index(b"Content-Length: ", start) + len(b"Content-Length: ")
    end = data.index(b"\r\n", at)
    return data[:at] + str(int(int(data[at:end]) * factor)).encode() + data[end:]


def _read(tmp_path: Path, data: bytes, name: str) -> list:
    path = tmp_path / name
    path.write_bytes(data)
    return list(read_shard(Shard(str(path), "warc", 0), InputSpec(paths=[str(path)])))


def _inside_member(data: bytes, member: int) -> int:
    """An offset halfway through gzip member ``member``: cutting there always damages it, never ends on a boundary."""
    start = 0
    for _ in range(member):
        reader = zlib.decompressobj(wbits=31)
        reader.decompress(data[start:])
        start = len(data) - len(reader.unused_data)
    reader = zlib.decompressobj(wbits=31)
    reader.decompress(data[start:])
    return (start + len(data) - len(reader.unused_data)) // 2


PLAIN = _warc()
GZ = _warc(gz=True)
RECORD = len(PLAIN) // N
CASES = {
    # name: (bytes, file name, documents kept, reason of the rejection)
    "content-length x5 (issue)": (_content_length_times(PLAIN, 5), "a.warc", None, "input:damaged_record"),
    "content-length too small": (_content_length_times(PLAIN, 0.8), "a.warc", N - 1, "input:damaged_record"),
    "content-length past the end": (_content_length_times(PLAIN, 30, record=N - 1), "a.warc", N - 1, "input:damaged_record"),
    "truncated .warc.gz (issue)": (GZ[: _inside_member(GZ, N // 2)], "a.warc.gz", N // 2, "input:damaged_file"),
    "truncated single-member .gz": (gzip.compress(PLAIN)[:-200], "a.warc.gz", None, "input:damaged_file"),
    "corrupt gzip bytes": (GZ[:200] + b"\0" * 50 + GZ[250:], "a.warc.gz", 0, "input:damaged_file"),
    "truncated inside a header": (PLAIN[: 3 * RECORD + 60], "a.warc", 3, "input:damaged_file"),
    "truncated inside a payload": (PLAIN[:-40], "a.warc", N - 1, "input:damaged_record"),
    "garbage mid-file (issue)": (PLAIN[: 5 * RECORD] + b"GARBAGE\r\n\r\n" + PLAIN[5 * RECORD:], "a.warc", 5,
                                 "input:damaged_file"),
    "not a WARC at all": (b"just some text, no archive\n" * 3, "a.warc", 0, "input:damaged_file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_warc_is_reported_with_offset_never_merged(tmp_path: Path, case: str) -> None:
    data, name, n_kept, reason = CASES[case]
    docs = _read(tmp_path, data, name)
    damaged = [d for d in docs if d.reason and d.reason.startswith("input:damaged")]
    good = [d for d in docs if not d.reason]
    assert damaged and damaged[0].reason == reason
    # what follows a damaged record may be unreadable too: then the rest of the file is one more rejection
    assert [d.reason for d in damaged[1:]] in ([], ["input:damaged_file"])
    for d in damaged:
        assert "offset" in d.detail and d.detail.startswith(str(tmp_path / name))
    if n_kept is not None:
        assert len(good) == n_kept
    assert len(good) < N
    for d in good:  # a kept document is one page: no WARC header or second page merged into it
        assert "WARC" not in d.text and d.text.count("Page number") == 1


def test_intact_warcs_read_completely(tmp_path: Path) -> None:
    for data, name in ((PLAIN, "a.warc"), (GZ, "a.warc.gz"), (gzip.compress(PLAIN), "b.warc.gz"),
                       (PLAIN + b"\r\n", "c.warc")):
        docs = _read(tmp_path, data, name)
        assert len(docs) == N and not any(d.reason for d in docs)


def test_damaged_warc_in_a_run_exits_3_with_everything_accounted(tmp_path: Path) -> None:
    folder = tmp_path / "crawl"
    folder.mkdir()
    (folder / "good.warc.gz").write_bytes(GZ)
    # Cut inside a gzip member: half the file's length lands on a member boundary in about 4% of archives
    # (their record ids are random), and a file cut there is a complete, shorter archive.
    (folder / "cut.warc.gz").write_bytes(GZ[: _inside_member(GZ, N // 2)])
    (folder / "merged.warc").write_bytes(_content_length_times(PLAIN, 5))
    out = tmp_path / "out"
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", f"{folder}/*.warc*", out), "--no-progress")
    assert code == 3, output
    rejected = list(read_documents(out / "rejected"))
    assert sorted(d.reason for d in rejected) == ["input:damaged_file", "input:damaged_file", "input:damaged_record"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["totals"]["kept"] == N + N // 2


# ---------------------------------------------------------------- principle 6: bounded HTML extraction

NESTED = "<html><body>" + "<div>x" * 50_000 + "</div>" * 50_000 + "</body></html>"  # the 81 s page


@pytest.mark.parametrize("html", [
    NESTED,
    "<div>" * 600,                                                      # unclosed, 600 deep
    "<html><body>" + ("<div>x" * 250 + "</div>" * 250) * 200 + "</body></html>",  # many 250-deep trees
    "</div>" * 60_000 + NESTED,                                          # stray closing tags first
    "<SPAN><Section class='a'>" * 400,                                  # upper case, attributes
])
def test_deeply_nested_html_is_rejected_before_extraction(html: str) -> None:
    assert html_problem(html) is not None


@pytest.mark.parametrize("html", [
    "<html><body>" + "<p>word " * 50_000 + "</body></html>",              # 50k unclosed paragraphs
    "<table>" + "<tr><td>a<td>b<td>c" * 5_000 + "</table>",               # unclosed cells and rows
    "<ul>" + "<li>item " * 5_000 + "</ul>",
    "<body>" + "<br><img src=x><hr/><input>" * 5_000 + "</body>",        # void elements
    "<script>" + "if (a<b && c<d) x();" * 5_000 + "</script><p>text</p>",  # '<' in scripts
    "<html><body>" + ("<div>x" * 50 + "</div>" * 50) * 1_000 + "</body></html>",
])
def test_ordinary_html_with_many_tags_passes(html: str) -> None:
    assert html_problem(html) is None


def test_deep_html_becomes_a_rejected_row_in_jsonl_and_warc(tmp_path: Path) -> None:
    src = tmp_path / "pages.jsonl"
    src.write_text(json.dumps({"id": "bomb", "html": NESTED}) + "\n"
                   + json.dumps({"id": "ok", "html": "<html><body><p>A normal page with a sentence.</p></body></html>"})
                   + "\n")
    spec = InputSpec(paths=[str(src)], html_field="html")
    docs = list(read_shard(Shard(str(src), "jsonl", 0), spec))
    assert [(d.id, d.reason) for d in docs] == [(docs[0].id, "input:html_too_deep"), ("ok", None)]
    warc = _read(tmp_path, _warc(2, html=NESTED), "deep.warc")
    assert [d.reason for d in warc] == ["input:html_too_deep"] * 2


def test_damaged_parquet_rows_are_rejected_one_by_one(tmp_path: Path, tokdir_small: Path) -> None:
    """A corrupt row group (ZSTD data damaged) aborted the run with a traceback; now each of its rows is a
    rejection naming the row group, the other row groups are read, and tokenize says which rows in one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in" / "docs.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(300)], "text": [f"word {i} " * 20 for i in range(300)]}),
                   path, row_group_size=100, compression="zstd")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 200] = bytes(b ^ 0xFF for b in data[middle: middle + 200])
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    code, output = invoke("run", write_recipe(tmp_path / "r.yaml", str(path), out), "--no-progress")
    assert code == 3, output
    rejected = list(read_documents(out / "rejected"))
    assert len(rejected) == 100 and {d.reason for d in rejected} == {"input:damaged_file"}
    assert "row group " in rejected[0].detail and " cannot be read" in rejected[0].detail
    assert len(list(read_documents(out / "kept"))) == 200
    code, output = invoke("tokenize", "-i", path, "-t", tokdir_small, "-o", tmp_path / "tok", "--no-progress")
    assert code == 2 and "cannot be read" in output and "Traceback" not in output
