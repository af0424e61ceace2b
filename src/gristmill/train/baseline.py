"""The non-neural baseline beside every learning curve: TF-IDF n-grams + logistic regression.

A careful engineer's first try on a small labelled text set (sublinear term frequencies, L2 logistic
regression, scikit-learn), with one choice, the ``analyzer``:

- ``"word"``: word 1-2-grams and character 2-5-grams within words, for space-separated languages;
- ``"char"``: character n-grams (1-3 by default) across the text, which need no word segmentation, so
  the same baseline serves Chinese (where a word tokenizer would need a segmenter).

``gristmill curve`` fits it on the very samples the encoders are fine-tuned on, so the table shows at
once whether the neural model is worth it for the task. This module trains nothing else and reads no files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gristmill.train.tasks import TaskData, TaskError, sample_training

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    from gristmill.train.tasks import SequenceExample

NAME = "tfidf-logreg"
ANALYZERS = ("word", "char")
CHAR_NGRAMS = (1, 3)  # Chinese words are mostly one to three characters


def _text(example: SequenceExample) -> str:
    pair = getattr(example, "text_pair", None)
    return example.text if not pair else f"{example.text} {pair}"


def vectorizer(analyzer: str = "word", ngram_range: tuple[int, int] | None = None) -> FeatureUnion | TfidfVectorizer:
    """The TF-IDF features of ``analyzer`` (see the module docstring)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    if analyzer == "word":
        return make_union(TfidfVectorizer(ngram_range=ngram_range or (1, 2), sublinear_tf=True, min_df=1),
                          TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    if analyzer == "char":
        return TfidfVectorizer(analyzer="char", ngram_range=ngram_range or CHAR_NGRAMS, sublinear_tf=True, min_df=1)
    raise ValueError(f"analyzer must be one of {', '.join(ANALYZERS)}, got {analyzer!r}")


def tfidf_logreg(train: Sequence[SequenceExample], test: Sequence[SequenceExample], analyzer: str = "word",
                 ngram_range: tuple[int, int] | None = None) -> dict[str, float]:
    """Fit on ``train`` (sequence examples), score ``test``: accuracy, macro-F1 and seconds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    t0 = time.perf_counter()
    model = make_pipeline(vectorizer(analyzer, ngram_range), LogisticRegression(max_iter=2000, C=10.0))
    model.fit([_text(e) for e in train], [e.label for e in train])
    truth = [e.label for e in test]
    pred = model.predict([_text(e) for e in test])
    return {"accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
            "seconds": round(time.perf_counter() - t0, 2)}


def tfidf_scores(data: TaskData, per_class: int | None = None, seed: int = 0, analyzer: str = "char",
                 ngram_range: tuple[int, int] | None = None) -> dict[str, Any]:
    """Fit on (a per-class sample of) ``data.train`` as fine-tuning samples it; scores on ``data.test``."""
    if not data.test:
        raise TaskError("the TF-IDF baseline needs a test file")
    train = sample_training(data.train, per_class, seed).examples
    scores = tfidf_logreg(train, data.test, analyzer, ngram_range)
    used = ngram_range or (CHAR_NGRAMS if analyzer == "char" else (1, 2))
    return {"test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"], "train_examples": len(train),
            "analyzer": analyzer, "ngram_range": list(used), "seconds": scores["seconds"]}
