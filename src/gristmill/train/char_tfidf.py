"""TF-IDF over character n-grams + logistic regression: the non-neural peer of a fine-tuned encoder.

Character n-grams need no word segmentation, so the same baseline serves Chinese (where a word
tokenizer would need a segmenter) and space-separated languages. Trained on exactly the examples the
encoder is fine-tuned on (``tasks.sample_training`` with the same size and seed), scored on the same
test file. This module fits and scores only; it reads task files through ``train.tasks``.
"""

from __future__ import annotations

import time
from typing import Any

from gristmill.train.tasks import TaskData, TaskError, sample_training

NGRAMS = (1, 3)  # Chinese words are mostly one to three characters


def char_tfidf_scores(data: TaskData, per_class: int | None = None, seed: int = 0,
                      ngram_range: tuple[int, int] = NGRAMS) -> dict[str, Any]:
    """Fit on (a per-class sample of) ``data.train``; accuracy and macro-F1 on ``data.test``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    if not data.test:
        raise TaskError("the TF-IDF baseline needs a test file")
    train = sample_training(data.train, per_class, seed).examples
    model = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True, min_df=1),
                          LogisticRegression(max_iter=2000, C=10.0))
    t0 = time.perf_counter()
    model.fit([e.text for e in train], [e.label for e in train])
    predicted = model.predict([e.text for e in data.test])
    gold = [e.label for e in data.test]
    return {"test_accuracy": float(accuracy_score(gold, predicted)),
            "test_macro_f1": float(f1_score(gold, predicted, average="macro")),
            "train_examples": len(train), "ngram_range": list(ngram_range),
            "seconds": round(time.perf_counter() - t0, 2)}
