"""Vectorised tokens, token hashes and n-gram hashes shared by every dedup and decontamination step.

A token is a maximal run of word characters (letters, digits, marks, ``_``), except that each CJK
character (Han, kana, CJK compatibility ideographs) is a token of its own, so Chinese and Japanese
text, which has no spaces, gets character n-grams while other scripts get word n-grams. Text is
lower-cased first (``pyarrow.compute.utf8_lower``).

The hot path never makes a Python string per token: it classifies the UTF-8 bytes of a whole batch
with a lookup table on (lead byte, next byte), cuts tokens where the class changes, and hashes every
token at once with a shift-invariant polynomial hash (``sum byte_j * R**j``, scaled by ``R**-start``,
all modulo 2**64, then mixed with the token length), computed with one segmented sum over the batch.
N-gram hashes combine token hashes polynomially and are finalised with the MurmurHash3 64-bit mixer.
:func:`char_class` is the specification the byte table is built from, so tests can check the
vectorised tokenizer against a plain per-character one.

This module computes hashes only; it reads no files and decides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SEP, WORD, CJK, _CONT = 0, 1, 2, 3

_M = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial n-gram hash
_LEN_MIX = np.uint64(0xC2B2AE3D27D4EB4F)

# (first code point, class) for code points >= 0x800, sorted; each range holds until the next one.
# Boundaries of three-byte characters are multiples of 64 and of four-byte ones multiples of 4096,
# because the byte table sees only the lead byte and the byte after it.
_RANGES: tuple[tuple[int, int], ...] = (
    (0x0800, WORD),   # Samaritan .. Greek extended: alphabetic scripts
    (0x2000, SEP),    # general punctuation, super/subscripts, currency, symbols, arrows, maths, box drawing
    (0x2C00, WORD),   # Glagolitic, Latin extended-C, Coptic, Georgian supplement, Tifinagh, Ethiopic ext.
    (0x2E00, SEP),    # supplemental punctuation
    (0x2E80, CJK),    # CJK radicals, Kangxi radicals, ideographic description
    (0x3000, SEP),    # CJK symbols and punctuation (ideographic space, 、 。 「 」)
    (0x3040, CJK),    # hiragana, katakana, bopomofo, CJK extension A, CJK unified ideographs
    (0xA000, WORD),   # Yi, Vai, ..., Hangul syllables (Korean separates words with spaces)
    (0xD800, SEP),    # surrogates, private use
    (0xF900, CJK),    # CJK compatibility ideographs
    (0xFB00, WORD),   # alphabetic and Arabic presentation forms
    (0xFE00, SEP),    # variation selectors, vertical and small forms
    (0xFE80, WORD),   # Arabic presentation forms-B
    (0xFF00, SEP),    # half- and full-width forms, specials
    (0x10000, WORD),  # supplementary alphabetic scripts
    (0x1F000, SEP),   # emoji and pictographs
    (0x20000, CJK),   # CJK extensions B..H
    (0x40000, SEP),   # tags, private use planes
)


def char_class(cp: int) -> int:
    """The token class of one code point: ``SEP``, ``WORD`` or ``CJK`` (one token per character)."""
    if cp < 0x80:
        return WORD if (0x30 <= cp <= 0x39 or 0x41 <= cp <= 0x5A or 0x61 <= cp <= 0x7A or cp == 0x5F) else SEP
    if cp < 0x800:
        # Latin-1 punctuation and symbols (NBSP, «, », °, soft hyphen, ...), multiplication and division signs.
        return SEP if cp < 0xC0 or cp in (0xD7, 0xF7) else WORD
    cls = SEP
    for first, c in _RANGES:
        if cp < first:
            break
        cls = c
    return cls


def _byte_table() -> np.ndarray:
    """Class of the character whose first byte is ``lead`` and next byte ``second``.

    Indexed by ``lead | second << 8``, i.e. by the little-endian uint16 that starts at the lead byte.
    """
    table = np.full((256, 256), SEP, dtype=np.uint8)  # [second, lead]
    for lead in range(256):
        if lead < 0x80:
            table[:, lead] = char_class(lead)
        elif lead < 0xC0:
            table[:, lead] = _CONT
        elif 0xC2 <= lead <= 0xDF:
            for second in range(0x80, 0xC0):
                table[second, lead] = char_class(((lead & 0x1F) << 6) | (second & 0x3F))
        elif 0xE0 <= lead <= 0xEF:
            for second in range(0x80, 0xC0):
                table[second, lead] = char_class(((lead & 0x0F) << 12) | ((second & 0x3F) << 6))
        elif 0xF0 <= lead <= 0xF4:
            for second in range(0x80, 0xC0):
                table[second, lead] = char_class(((lead & 0x07) << 18) | ((second & 0x3F) << 12))
    return table.reshape(-1)


_BYTE_CLASS = _byte_table()
_R = np.uint64(0xD6E8FEB86659FD93)  # odd, so it has an inverse modulo 2**64
_R_INV = np.uint64(pow(int(_R), -1, 1 << 64))
_powers: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """R**j and R**-j modulo 2**64 for j < n (cached, grown on demand)."""
    if len(_powers[0]) >= n:
        return _powers[0], _powers[1]
    tables = []
    for base in (_R, _R_INV):
        table = np.full(max(n, 1 << 18), base, dtype=np.uint64)
        table[0] = 1
        tables.append(np.cumprod(table, dtype=np.uint64))
    if n <= 1 << 22:  # keep the tables of ordinary batches; one huge document does not pin its memory
        _powers[:] = tables
    return tables[0], tables[1]


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a uint64 array (returned for chaining)."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@dataclass
class TokenBatch:
    """The tokens of a batch of documents: hashes and UTF-8 byte spans, documents one after another."""

    hashes: np.ndarray
    """uint64 hash of every token."""
    offsets: np.ndarray
    """int64, length documents + 1: the tokens of document ``i`` are ``hashes[offsets[i]:offsets[i+1]]``."""
    starts: np.ndarray
    """int64 byte offset of each token in ``data``."""
    ends: np.ndarray
    data: np.ndarray
    """uint8: the lower-cased UTF-8 text of the whole batch."""
    text_offsets: np.ndarray
    """int64, length documents + 1: document ``i`` is ``data[text_offsets[i]:text_offsets[i+1]]``."""

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def text(self, first: int, last: int) -> str:
        """The lower-cased source text from token ``first`` to token ``last`` (inclusive)."""
        return bytes(self.data[self.starts[first]:self.ends[last]]).decode("utf-8", "replace")


def utf8_buffers(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Lower-case ``texts`` and return (UTF-8 bytes, int64 offsets of each text); nulls count as empty."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        texts = pa.array(texts, pa.large_string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    lowered = pc.utf8_lower(texts)
    if not pa.types.is_large_string(lowered.type):
        lowered = lowered.cast(pa.large_string())
    _, off_buf, data_buf = lowered.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[lowered.offset: lowered.offset + len(lowered) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets


def tokenize_batch(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> TokenBatch:
    """Tokens of every text in ``texts`` (lower-cased), hashed; see the module docstring for the rules."""
    data, text_offsets = utf8_buffers(texts)
    n_docs = len(text_offsets) - 1
    base = int(text_offsets[0]) if n_docs >= 0 and len(text_offsets) else 0
    n = (int(text_offsets[-1]) - base) if len(text_offsets) else 0
    empty = TokenBatch(np.zeros(0, np.uint64), np.zeros(max(n_docs, 0) + 1, np.int64), np.zeros(0, np.int64),
                       np.zeros(0, np.int64), data, text_offsets)
    if n == 0:
        return empty
    padded = np.zeros(n + 2, dtype=np.uint8)
    padded[:n] = data[base:base + n]
    b = padded[:n]
    # Class of each byte from (byte, next byte), read as little-endian uint16 at even and odd offsets.
    cls = np.empty(n, dtype=np.uint8)
    even = padded[: 2 * ((n + 1) // 2)].view("<u2")
    odd = padded[1: 1 + 2 * (n // 2)].view("<u2")
    cls[0::2] = _BYTE_CLASS[even]
    cls[1::2] = _BYTE_CLASS[odd]
    cjk_lead = cls == CJK
    # A continuation byte (at most 3 after its lead) takes the class of its lead.
    for _ in range(3):
        cont = cls == _CONT
        if not cont.any():
            break
        prev = np.empty_like(cls)
        prev[0] = SEP
        prev[1:] = cls[:-1]
        np.copyto(cls, prev, where=cont)
    cls[cls == _CONT] = SEP  # stray continuation bytes (invalid UTF-8)
    word = cls == WORD
    member = cls != SEP
    doc_start = np.zeros(n + 1, dtype=bool)
    doc_start[np.clip(text_offsets[:-1] - base, 0, n)] = True
    start = word.copy()
    start[1:] &= ~word[:-1]
    start |= word & doc_start[:n]
    start |= cjk_lead
    # A token ends where the next byte is outside any token or starts a new one.
    cont_next = np.zeros(n, dtype=bool)
    cont_next[:-1] = member[1:] & ~start[1:]
    end_flag = member & ~cont_next
    starts = np.flatnonzero(start)
    if len(starts) == 0:
        return empty
    ends = np.flatnonzero(end_flag) + 1
    # Shift-invariant polynomial hash of each token: sum of byte * R**j over its bytes, times R**-start.
    pow_r, pow_inv = _power_tables(n + 1)
    # Segment sums as differences of one running sum (wrapping modulo 2**64 is harmless).
    w = np.empty(n, dtype=np.uint64)
    np.multiply(b, pow_r[:n], out=w, dtype=np.uint64)
    running = np.empty(n + 1, dtype=np.uint64)
    running[0] = 0
    np.cumsum(w, out=running[1:])
    sums = running[ends] - running[starts]
    sums *= pow_inv[starts]
    sums ^= (ends - starts).astype(np.uint64) * _LEN_MIX
    hashes = fmix64(sums)
    # Tokens before each document boundary = the token offsets of the documents.
    offsets = np.searchsorted(starts, text_offsets - base).astype(np.int64)
    starts += base
    ends += base
    return TokenBatch(hashes, offsets, starts, ends, data, text_offsets)


def tokens(text: str) -> list[str]:
    """The tokens of one text as strings (lower-cased), by the same rules as :func:`tokenize_batch`."""
    tb = tokenize_batch([text])
    return [bytes(tb.data[s:e]).decode("utf-8") for s, e in zip(tb.starts.tolist(), tb.ends.tolist())]


@dataclass
class NGrams:
    """N-gram hashes of a token batch, ordered by document then position."""

    hashes: np.ndarray
    """uint64, finalised with :func:`fmix64`."""
    doc: np.ndarray
    """int64 document index of each n-gram."""
    first: np.ndarray
    """int64 index (into the batch's tokens) of the n-gram's first token."""
    length: np.ndarray | int
    """tokens in each n-gram (``n``, or fewer for a short document taken whole)."""


def ngram_hashes(tb: TokenBatch, n: int, whole_if_shorter: bool = True, min_tokens: int = 1) -> NGrams:
    """Hashes of every run of ``n`` consecutive tokens inside one document.

    With ``whole_if_shorter``, a document with ``min_tokens <= tokens < n`` contributes one n-gram made of
    all its tokens, so short documents still have shingles; its hash equals that of the same tokens as a
    ``len``-gram, which lets decontamination look up short evaluation examples whole.
    """
    if n < 1:
        raise ValueError("n-gram size must be at least 1")
    t = tb.hashes
    counts = tb.counts
    n_tokens = len(t)
    n_docs = len(counts)
    parts_h: list[np.ndarray] = []
    parts_doc: list[np.ndarray] = []
    parts_first: list[np.ndarray] = []
    parts_len: list[np.ndarray] = []
    if n_tokens >= n:
        width = n_tokens - n + 1
        acc = t[:width].copy()
        for k in range(1, n):
            acc *= _M
            acc += t[k:k + width]
        tok_doc = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
        valid = tok_doc[:width] == tok_doc[n - 1:]
        first = np.flatnonzero(valid)
        parts_h.append(acc[first])
        parts_doc.append(tok_doc[first])
        parts_first.append(first)
        parts_len.append(np.full(len(first), n, np.int64))
    if whole_if_shorter and n > 1:
        short = np.flatnonzero((counts >= max(1, min_tokens)) & (counts < n))
        if len(short):
            begin = tb.offsets[short].astype(np.int64)
            lens = counts[short].astype(np.int64)
            parts_h.append(_poly(t, begin, lens))
            parts_doc.append(short.astype(np.int64))
            parts_first.append(begin)
            parts_len.append(lens)
    if not parts_h:
        z64 = np.zeros(0, np.int64)
        return NGrams(np.zeros(0, np.uint64), z64, z64, z64)
    h = np.concatenate(parts_h)
    doc = np.concatenate(parts_doc)
    first = np.concatenate(parts_first)
    length = np.concatenate(parts_len)
    if len(parts_h) > 1:
        order = np.argsort(first, kind="stable")
        h, doc, first, length = h[order], doc[order], first[order], length[order]
    return NGrams(fmix64(h), doc, first, length)


def _poly(t: np.ndarray, begin: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Unmixed polynomial hash of ``t[begin[i] : begin[i] + lengths[i]]`` for every i (lengths >= 1)."""
    acc = t[begin].copy()
    for k in range(1, int(lengths.max()) if len(lengths) else 0):
        more = k < lengths
        acc[more] = acc[more] * _M + t[begin[more] + k]
    return acc


def window_hashes(tb: TokenBatch, first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hash of the n-gram of ``lengths[i]`` tokens starting at token ``first[i]``, as :func:`ngram_hashes`
    computes it; a window that runs past the end of its document gets hash 0 (matches nothing real)."""
    first = np.asarray(first, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(first) == 0:
        return np.zeros(0, np.uint64)
    doc = np.searchsorted(tb.offsets, first, side="right") - 1
    inside = first + lengths <= tb.offsets[doc + 1]
    out = np.zeros(len(first), np.uint64)
    if inside.any():
        out[inside] = fmix64(_poly(tb.hashes, first[inside], lengths[inside]))
    return out


def batches_by_bytes(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Cut documents with these byte lengths into consecutive [start, stop) runs of about ``budget`` bytes."""
    out: list[tuple[int, int]] = []
    if len(lengths) == 0:
        return out
    ends = np.cumsum(lengths)
    start = 0
    consumed = 0
    while start < len(lengths):
        stop = int(np.searchsorted(ends, consumed + budget, side="right"))
        stop = max(stop, start + 1)
        out.append((start, stop))
        consumed = int(ends[stop - 1])
        start = stop
    return out
