"""The one TF-IDF baseline: word or character n-grams, the same fit and scores."""

from __future__ import annotations

import importlib.util

import pytest

from gristmill.train.baseline import tfidf_logreg, tfidf_scores, vectorizer
from gristmill.train.tasks import SequenceExample, TaskData, TaskError, TaskSpec

ROWS = [("今天天气很好", "weather"), ("明天会下雨", "weather"), ("阳光明媚的早晨", "weather"),
        ("股票价格上涨", "money"), ("银行利率下调", "money"), ("市场投资回报", "money")] * 4


def examples(rows) -> list[SequenceExample]:
    return [SequenceExample(text=t, label=label) for t, label in rows]


def test_one_module_two_analyzers() -> None:
    assert importlib.util.find_spec("gristmill.train.char_tfidf") is None  # the second baseline is gone
    char = vectorizer("char").fit(["ab"])
    assert sorted(char.get_feature_names_out()) == ["a", "ab", "b"]  # character 1-3-grams across the text
    word = vectorizer("word")
    assert len(word.transformer_list) == 2  # word 1-2-grams and characters within words
    with pytest.raises(ValueError, match="analyzer"):
        vectorizer("bytes")


@pytest.mark.parametrize("analyzer", ["word", "char"])
def test_both_analyzers_score_the_same_way(analyzer: str) -> None:
    train, test = examples(ROWS), examples(ROWS[:6])
    scores = tfidf_logreg(train, test, analyzer)
    assert set(scores) == {"accuracy", "macro_f1", "seconds"} and 0.0 <= scores["accuracy"] <= 1.0


def test_task_scores_sample_like_fine_tuning() -> None:
    data = TaskData(spec=TaskSpec(type="sequence", labels=["money", "weather"]), train=examples(ROWS),
                    dev=[], test=examples(ROWS[:6]))
    scores = tfidf_scores(data, per_class=2, seed=0)
    assert scores["train_examples"] == 4 and scores["analyzer"] == "char" and scores["ngram_range"] == [1, 3]
    assert 0 <= scores["test_accuracy"] <= 1 and 0 <= scores["test_macro_f1"] <= 1
    with pytest.raises(TaskError, match="test file"):
        tfidf_scores(TaskData(spec=data.spec, train=data.train, dev=[], test=[]))
