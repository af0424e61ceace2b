"""minhash_dedup: signatures, LSH parameters and near-duplicate removal through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.data.dedup.minhash import (
    MinHashDedup,
    estimated_jaccard,
    lsh_error_areas,
    optimal_bands_rows,
    permutations,
    text_signatures,
)
from gristmill.data.recipe import RecipeError, build_step
from tests.data.dedup.corpus_helpers import edit, text_of


def test_bands_rows_minimise_the_weighted_error() -> None:
    b, r = optimal_bands_rows(0.8, 128)
    assert b * r <= 128
    fp, fn = lsh_error_areas(0.8, np.array([float(b), 16.0, 8.0]), np.array([float(r), 8.0, 16.0]))
    total = 0.5 * fp + 0.5 * fn
    assert total[0] < total[1] and total[0] < total[2]
    # a higher threshold needs longer bands (fewer false positives at lower similarity)
    assert optimal_bands_rows(0.95, 128)[1] > optimal_bands_rows(0.5, 128)[1]


def test_bands_rows_agree_with_datasketch() -> None:
    lsh = pytest.importorskip("datasketch.lsh")
    for num_perm in (64, 128):
        for threshold in (0.5, 0.7, 0.8, 0.9):
            assert optimal_bands_rows(threshold, num_perm) == lsh._optimal_param(threshold, num_perm, 0.5, 0.5)


def test_signatures_estimate_jaccard() -> None:
    a, b = permutations(256, 1)
    base = text_of(1, 400).split()
    other = text_of(2, 400).split()
    # word 1-grams of sets with known overlap: 300 shared words out of 500 distinct -> J = 0.6
    t1 = " ".join(base[:400])
    t2 = " ".join(base[100:400] + other[:100])
    s1 = set(t1.split())
    s2 = set(t2.split())
    true_j = len(s1 & s2) / len(s1 | s2)
    sig, has, _ = text_signatures([t1, t2, t1, "", "one"], 1, a, b)
    assert has.tolist() == [True, True, True, False, True]
    assert abs(float(estimated_jaccard(sig[0], sig[1])) - true_j) < 0.1
    assert (sig[0] == sig[2]).all()


def test_identical_documents_with_different_ids_keep_the_first(run_steps) -> None:
    t = text_of(10)
    docs = [("a", text_of(1)), ("b", t), ("c", text_of(2)), ("d", t), ("e", t)]
    out = run_steps(docs, [("noop", {}), ("minhash_dedup", {})], shard_size=2)
    assert set(out.kept) == {"a", "b", "c"}
    assert out.reason("d") == "minhash_dedup:dup_of=b" and out.reason("e") == "minhash_dedup:dup_of=b"
    step = out.stats["steps"][1]
    assert step["rejected"] == {"minhash_dedup:dup_of": 2}
    assert step["counters"]["clusters"] == 1 and step["counters"]["cluster_size_max"] == 3


def test_near_duplicates_are_removed_and_different_texts_kept(run_steps) -> None:
    base = text_of(5, 200)
    docs = [("orig", base), ("near1", edit(base, 3, 1)), ("near2", edit(base, 4, 2)),
            ("far", edit(base, 80, 3))] + [(f"other{i}", text_of(100 + i)) for i in range(6)]
    out = run_steps(docs, [("noop", {}), ("minhash_dedup", {"threshold": 0.7})])
    assert out.reason("near1") == "minhash_dedup:dup_of=orig"
    assert out.reason("near2") == "minhash_dedup:dup_of=orig"
    assert "far" in out.kept and "orig" in out.kept
    assert all(f"other{i}" in out.kept for i in range(6))
    assert "cluster of 3 documents" in out.rejected["near1"].detail


def test_empty_and_one_word_documents(run_steps) -> None:
    docs = [("w1", "hello"), ("w2", "Hello!"), ("w3", "world"), ("p1", "..."), ("p2", "?!"), ("long", text_of(3))]
    out = run_steps(docs, [("noop", {}), ("minhash_dedup", {})])
    # one-word documents are one shingle: the same word is a duplicate, another word is not
    assert out.reason("w2") == "minhash_dedup:dup_of=w1"
    assert {"w1", "w3", "long"} <= set(out.kept)
    # documents without any token never match each other
    assert {"p1", "p2"} <= set(out.kept)
    assert out.stats["steps"][1]["counters"]["docs_without_shingles"] == 2


def test_cjk_near_duplicates(run_steps) -> None:
    zh = ("数据去重是训练语言模型之前最重要的步骤之一因为重复的文本会浪费计算资源并且让模型记住训练数据"
          "我们使用最小哈希和局部敏感哈希来寻找近似重复的文档然后只保留每个簇中的第一个文档")
    zh_edit = zh.replace("重要", "关键", 1) + "。"
    ja = "日本語の文章は単語の間に空白がないので文字のまとまりを使って似ている文書を見つける必要があります"
    out = run_steps([("zh", zh), ("zh2", zh_edit), ("ja", ja), ("zh3", zh[::-1])],
                    [("noop", {}), ("minhash_dedup", {"threshold": 0.7})])
    assert out.reason("zh2") == "minhash_dedup:dup_of=zh"
    assert {"zh", "ja", "zh3"} <= set(out.kept)


def test_duplicate_of_a_document_rejected_earlier_survives(run_steps) -> None:
    base = text_of(8, 150)
    longer = base + " " + text_of(9, 10)
    # "first" is rejected by the length step, so its near-duplicate "second" is the one to keep
    second = edit(base, 2, 4)
    docs = [("first", longer), ("second", second), ("third", edit(second, 1, 5))]
    out = run_steps(docs, [("length", {"max_chars": len(base) + 5}), ("minhash_dedup", {"threshold": 0.7})])
    assert out.reason("first") == "length:max_chars"
    assert "second" in out.kept and out.reason("third") == "minhash_dedup:dup_of=second"


def test_chain_of_exact_and_near_duplicates_leaves_one(run_steps) -> None:
    base = text_of(11, 150)
    near = edit(base, 3, 6)
    docs = [("a", base), ("b", near), ("c", near.upper()), ("d", text_of(12))]
    out = run_steps(docs, [("noop", {}), ("exact_dedup", {}), ("minhash_dedup", {"threshold": 0.7})])
    assert out.reason("c") == "exact_dedup:dup_of=b"
    assert out.reason("b") == "minhash_dedup:dup_of=a"
    assert set(out.kept) == {"a", "d"}


def test_invalid_parameters_are_recipe_errors() -> None:
    with pytest.raises(RecipeError, match="threshold"):
        build_step("minhash_dedup", {"threshold": 1.5})
    with pytest.raises(RecipeError, match="bands"):
        build_step("minhash_dedup", {"bands": 4})
    with pytest.raises(RecipeError, match="at most num_perm"):
        build_step("minhash_dedup", {"bands": 20, "rows": 10})
    assert MinHashDedup(bands=4, rows=8).lsh_params() == (4, 8)
