"""exact_dedup: normalised-text hashing and the keep-the-first rule across shards."""

from __future__ import annotations

import pyarrow as pa

from gristmill.data.dedup.exact import normalize_texts, text_hashes
from tests.data.dedup.corpus_helpers import text_of


def test_normalisation_ignores_case_spacing_and_compatibility_forms() -> None:
    texts = pa.array(["Hello  World\n", " hello world", "ＨＥＬＬＯ world", "hello worlds", None])
    norm = normalize_texts(texts).to_pylist()
    assert norm[:3] == ["hello world"] * 3 and norm[3] == "hello worlds" and norm[4] == ""
    h = text_hashes(texts)
    assert (h[0] == h[1]).all() and (h[0] == h[2]).all() and not (h[0] == h[3]).all()
    raw = text_hashes(texts, normalize=False)
    assert not (raw[0] == raw[1]).all()


def test_identical_documents_with_different_ids_keep_the_first_in_input_order(run_steps) -> None:
    t = text_of(1)
    docs = [("x0", text_of(2)), ("x1", text_of(3)), ("x2", text_of(4)), ("first", t), ("x4", text_of(5)),
            ("copy1", t.upper()), ("copy2", "  " + t.replace(" ", "\n")), ("x7", text_of(6))]
    out = run_steps(docs, [("noop", {}), ("exact_dedup", {})], shard_size=2)
    assert out.reason("copy1") == "exact_dedup:dup_of=first"
    assert out.reason("copy2") == "exact_dedup:dup_of=first"
    assert len(out.kept) == 6 and "first" in out.kept
    counters = out.stats["steps"][1]["counters"]
    assert counters["clusters"] == 1 and counters["duplicates"] == 2 and counters["cluster_size_max"] == 3


def test_raw_mode_keeps_case_variants(run_steps) -> None:
    t = text_of(1)
    out = run_steps([("a", t), ("b", t.upper()), ("c", t)], [("noop", {}), ("exact_dedup", {"normalize": False})])
    assert set(out.kept) == {"a", "b"} and out.reason("c") == "exact_dedup:dup_of=a"


def test_duplicate_of_a_rejected_document_is_kept(run_steps) -> None:
    t = text_of(1)
    # "long" is rejected by length before dedup; "short" normalises to the same text and survives
    docs = [("long", "   " + t + "        "), ("short", t), ("again", t)]
    out = run_steps(docs, [("length", {"max_chars": len(t) + 2}), ("exact_dedup", {})])
    assert out.reason("long") == "length:max_chars"
    assert "short" in out.kept and out.reason("again") == "exact_dedup:dup_of=short"


def test_one_word_documents(run_steps) -> None:
    out = run_steps([("a", "word"), ("b", "Word"), ("c", "other")], [("noop", {}), ("exact_dedup", {})])
    assert set(out.kept) == {"a", "c"} and out.reason("b") == "exact_dedup:dup_of=a"


def test_corpus_steps_after_everything_was_rejected(run_steps) -> None:
    docs = [("a", text_of(1)), ("b", text_of(1)), ("c", text_of(2))]
    steps = [("length", {"max_chars": 5}), ("exact_dedup", {}), ("minhash_dedup", {}), ("line_dedup", {})]
    out = run_steps(docs, steps)
    assert not out.kept and {d.reason for d in out.rejected.values()} == {"length:max_chars"}
    assert out.stats["steps"][2]["counters"]["clusters"] == 0
