"""The non-neural baseline beside every learning curve: TF-IDF n-grams + logistic regression.

A careful engineer's first try on a small labelled text set (word 1-2-grams and character 2-5-grams,
sublinear term frequencies, L2 logistic regression, scikit-learn). ``gristmill curve`` fits it on the
very samples the encoders are fine-tuned on, so the table shows at once whether the neural model is
worth it for the task. This module trains nothing else and reads no files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

NAME = "tfidf-logreg"


def _text(example: Any) -> str:
    pair = getattr(example, "text_pair", None)
    return example.text if not pair else f"{example.text} {pair}"


def tfidf_logreg(train: Sequence[Any], test: Sequence[Any]) -> dict[str, float]:
    """Fit on ``train`` (sequence examples), score ``test``: accuracy, macro-F1 and seconds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline, make_union

    t0 = time.perf_counter()
    model = make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        LogisticRegression(max_iter=2000, C=10.0))
    model.fit([_text(e) for e in train], [e.label for e in train])
    truth = [e.label for e in test]
    pred = model.predict([_text(e) for e in test])
    return {"accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
            "seconds": round(time.perf_counter() - t0, 2)}
