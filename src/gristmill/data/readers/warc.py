"""WARC (and ARC), plain or gzipped: the documents of a web crawl's response records, text extracted from
their HTML.

Crawl files arrive damaged: truncated downloads, corrupt gzip members, records whose Content-Length lies.
warcio alone takes some of that for a clean end of file, so gzip is decompressed through a checking wrapper
here, and a damaged record or file becomes an ``input:damaged_*`` rejection naming the file and offset, never
a merged, shortened or silently missing document.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import gristmill.data.storage as storage
from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers.html import HtmlExtractor, html_problem
from gristmill.data.readers.records import rejected_document, stable_id
from gristmill.data.shards import Shard

if TYPE_CHECKING:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.recordloader import ArcWarcRecord


class DamagedInput(Exception):
    """A container that cannot be read past ``offset`` (a truncated or corrupt compressed stream)."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset


class _CheckedGzip(io.RawIOBase):
    """The decompressed bytes of a (multi-member) ``.gz`` stream; truncation or corruption raises
    :class:`DamagedInput` once every byte before the damage has been returned.

    Readers that decompress on their own (warcio) take a truncated gzip member for a clean end of file
    and return fewer records without a word; reading through this wrapper makes the damage visible.
    """

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._member = zlib.decompressobj(31)
        self._pending = b""
        self._buffer = b""
        self._done = False
        self.pos = 0
        """Decompressed bytes returned so far."""

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._buffer and not self._done:
            if self._member.eof:
                rest = self._member.unused_data or self._raw.read(1 << 16)
                if not rest.strip(b"\0"):  # the end, after complete members (zero padding allowed)
                    self._done = True
                    return
                self._member = zlib.decompressobj(31)
                self._pending = rest
            data = self._pending or self._raw.read(1 << 16)
            self._pending = b""
            if not data:
                raise DamagedInput(self.pos, "the file ends inside a gzip member (truncated)")
            try:
                self._buffer = self._member.decompress(data)
            except zlib.error as exc:
                raise DamagedInput(self.pos, f"corrupt compressed data ({exc})") from None

    def read(self, size: int = -1) -> bytes:
        self._fill()
        if size is None or size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self.pos


def warc_documents(shard: Shard, spec: InputSpec, extract_html: HtmlExtractor) -> Iterator[Document]:
    """Response records of a WARC file; a damaged record or file becomes an ``input:damaged_*`` rejection
    naming the file and offset (never a merged, shortened or silently missing document)."""
    from warcio.archiveiterator import ArchiveIterator

    compressed = shard.path.lower().endswith(".gz")
    arc = shard.path.lower().removesuffix(".gz").endswith(".arc")
    at = "decompressed offset" if compressed else "offset"
    with storage.open_file(shard.path, "rb") as raw:
        stream = _CheckedGzip(raw) if compressed else raw
        records = ArchiveIterator(stream)
        records.INC_RECORD = ""  # warcio prints a warning of its own; the damage is reported as a rejection
        n = 0  # records read
        try:
            while (record := _next_record(records)) is not None:
                if record.format != "warc" and not arc:
                    raise DamagedInput(records.offset, f"not a WARC record ({record.format} format)")
                n += 1
                doc = _warc_document(record, n, shard.path, spec, extract_html)
                errors = records.err_count
                try:
                    records.read_to_end()
                except DamagedInput:
                    if doc is not None and record.raw_stream.limit == 0:
                        yield doc  # the record was whole; the damage starts after it
                    raise
                offset = records.get_record_offset()
                if record.raw_stream.limit > 0 or records.err_count > errors:
                    why = ("ends before its Content-Length" if record.raw_stream.limit > 0 else
                           "is not followed by the blank lines that end a record: its Content-Length is wrong, so it "
                           "may hold parts of the next records")
                    yield rejected_document(shard.path, n, "damaged_record", "",
                                            f"WARC record {n} at {at} {offset:,} {why}; it is not used")
                elif doc is not None:
                    yield doc
            end = stream.pos if isinstance(stream, _CheckedGzip) else storage.size(shard.path)
            if records.offset < end:
                # warcio ends quietly where a record header is cut short: the file was truncated.
                raise DamagedInput(records.offset, f"{end - records.offset:,} bytes after the last complete record "
                                   "are not a whole record (truncated file?)")
        except DamagedInput as exc:
            yield rejected_document(shard.path, n + 1, "damaged_file", "",
                                    f"unreadable from {at} {exc.offset:,} (after {n} records): "
                                    f"{exc}; the rest of the file was not read")


def _next_record(records: ArchiveIterator) -> ArcWarcRecord | None:
    """The next record of a warcio iterator, None at the end; whatever warcio fails with on damaged
    bytes (its own errors, or attribute and value errors on headers it half parsed) becomes
    :class:`DamagedInput`."""
    try:
        return next(records)
    except StopIteration:
        return None
    except DamagedInput:
        raise
    except Exception as exc:  # any parser failure on untrusted bytes is damage, not a bug of ours
        from warcio.exceptions import ArchiveLoadFailed

        known = isinstance(exc, ArchiveLoadFailed) and str(exc).strip()
        message = str(exc).strip().splitlines()[0] if known else f"a malformed or cut record header ({type(exc).__name__})"
        raise DamagedInput(records.offset, message) from None


def _warc_document(record: ArcWarcRecord, n: int, path: str, spec: InputSpec, extract_html: HtmlExtractor) -> Document | None:
    """The document of one WARC record (None for records other than responses)."""
    if record.rec_type != "response":
        return None
    url = record.rec_headers.get_header("WARC-Target-URI")
    rec_id = record.rec_headers.get_header("WARC-Record-ID") or stable_id(path, n)
    ctype = (record.http_headers.get_header("Content-Type") if record.http_headers else "") or ""
    meta = {"url": url, "warc_date": record.rec_headers.get_header("WARC-Date")}
    payload = record.content_stream().read()
    if "html" not in ctype.lower():
        return rejected_document(path, n, "not_html", "", f"record {url} has content type {ctype!r}")
    if len(payload) > spec.max_doc_bytes:
        return rejected_document(path, n, "too_large", "", f"record {url} of {len(payload):,} bytes")
    html = payload.decode("utf-8", "replace")
    if problem := html_problem(html):
        return rejected_document(path, n, "html_too_deep", "", f"record {url}: {problem}")
    doc = Document(rec_id.strip("<>").removeprefix("urn:uuid:"), extract_html(html), meta)
    if not doc.text.strip():
        doc.reject("input", "empty_text", f"{path} record {n} ({url}): no text extracted")
    return doc
