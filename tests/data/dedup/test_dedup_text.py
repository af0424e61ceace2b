"""Tokens and n-gram hashes: the vectorised byte tokenizer must match its per-character specification."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.data.dedup.text import (
    CJK,
    WORD,
    batches_by_bytes,
    char_class,
    ngram_hashes,
    tokenize_batch,
    tokens,
    window_hashes,
)


def reference_tokens(text: str) -> list[str]:
    """Tokens by the definition: runs of WORD characters; every CJK character alone."""
    out: list[str] = []
    cur = ""
    for ch in pc.utf8_lower(pa.array([text])).to_pylist()[0]:
        cls = char_class(ord(ch))
        if cls == WORD:
            cur += ch
            continue
        if cur:
            out.append(cur)
            cur = ""
        if cls == CJK:
            out.append(ch)
    if cur:
        out.append(cur)
    return out


def test_tokens_words_punctuation_and_case() -> None:
    assert tokens("Hello, World! It's 2024_x.") == ["hello", "world", "it", "s", "2024_x"]
    assert tokens("café CAFÉ — “quoted” x×y") == ["café", "café", "quoted", "x", "y"]
    assert tokens("") == [] and tokens("  \n\t ") == [] and tokens("word") == ["word"]


def test_cjk_characters_are_single_tokens() -> None:
    assert tokens("中文文本，测试。") == ["中", "文", "文", "本", "测", "试"]
    assert tokens("日本語のテキスト") == ["日", "本", "語", "の", "テ", "キ", "ス", "ト"]
    assert tokens("mixed中文words 한국어") == ["mixed", "中", "文", "words", "한국어"]


def test_vectorised_tokenizer_matches_the_specification_on_random_text() -> None:
    rng = random.Random(7)
    pool = (list(range(0x20, 0x250)) + list(range(0x370, 0x3D0)) + list(range(0x400, 0x450))
            + list(range(0x2000, 0x2070)) + list(range(0x3000, 0x30FF)) + list(range(0x4E00, 0x4E30))
            + [0xAC00, 0xD55C, 0xFEFF, 0xFF01, 0xFF21, 0x1F600, 0x1F680, 0x20000, 0x10400, 0xE000])
    pool = [cp for cp in pool if cp != 0x130]  # İ lower-cases to two code points; covered by pyarrow itself
    texts = ["".join(chr(rng.choice(pool)) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    tb = tokenize_batch(texts)
    for i, text in enumerate(texts):
        got = [bytes(tb.data[s:e]).decode() for s, e in zip(tb.starts[tb.offsets[i]:tb.offsets[i + 1]],
                                                            tb.ends[tb.offsets[i]:tb.offsets[i + 1]])]
        assert got == reference_tokens(text), repr(text)


def test_token_hashes_depend_on_the_token_only() -> None:
    tb = tokenize_batch(["alpha beta", "gamma alpha", "", "beta"])
    h = tb.hashes.tolist()
    assert tb.counts.tolist() == [2, 2, 0, 1]
    assert h[0] == h[3] and h[1] == h[4] and len(set(h)) == 3


def test_ngram_hashes_stay_inside_documents_and_are_position_free() -> None:
    tb = tokenize_batch(["a b c d", "x a b c", "a b"])
    ng = ngram_hashes(tb, 3)
    # doc 0: abc, bcd; doc 1: xab, abc; doc 2 (shorter than 3): "a b" whole
    assert ng.doc.tolist() == [0, 0, 1, 1, 2]
    assert ng.hashes[0] == ng.hashes[3]
    assert len(set(ng.hashes.tolist())) == 4
    # the whole short document hashes like the 2-gram "a b" anywhere else
    assert ng.hashes[4] == ngram_hashes(tb, 2).hashes[0]
    assert window_hashes(tb, np.array([5]), np.array([3]))[0] == ng.hashes[0]
    assert window_hashes(tb, np.array([6]), np.array([3]))[0] == 0  # runs past the end of its document
    assert len(ngram_hashes(tb, 3, whole_if_shorter=False).hashes) == 4


def test_batches_by_bytes_cover_every_document_once() -> None:
    lengths = np.array([5, 5, 100, 1, 1, 1, 0, 7])
    runs = batches_by_bytes(lengths, 10)
    assert runs[0][0] == 0 and runs[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    assert all(stop > start for start, stop in runs)
    assert batches_by_bytes(np.array([], dtype=np.int64), 10) == []
