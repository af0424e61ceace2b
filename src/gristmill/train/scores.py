"""Scores of a classifier's predictions against the gold labels: accuracy, macro-F1, the per-class report,
the confusion matrix, and exact-span entity precision/recall/F1 (the CoNLL measure) for BIO tags.

Plain functions of label indices and tag strings: they run no model and import no torch (scikit-learn is
imported when first scored). Fine-tuning's evaluation (``gristmill.train.finetune.evaluate``) turns logits
into these inputs. Not to be confused with ``gristmill.train.metrics``, the pretraining log (``metrics.jsonl``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gristmill.train.tasks import entity_type


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class report and confusion matrix (rows: true label, columns: predicted)."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    index = list(range(len(labels)))
    return {
        "examples": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # Macro over the labels that occur in y_true or y_pred (scikit-learn's default), so a class
        # missing from a small test file does not count as a zero.
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "report": classification_report(y_true, y_pred, labels=index, target_names=list(labels),
                                        output_dict=True, zero_division=0),
        "confusion_matrix": {"labels": list(labels), "rows": "true", "columns": "predicted",
                             "matrix": confusion_matrix(y_true, y_pred, labels=index).tolist()},
    }


def bio_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entity spans ``(start, end, type)`` of a BIO/IOB2 tag sequence; a stray I- starts a new span."""
    spans = set()
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        typ = entity_type(tag)
        continues = tag.startswith("I-") and kind == typ and start is not None
        if not continues and start is not None:
            spans.add((start, i, kind))
            start, kind = None, None
        if typ is not None and not continues:
            start, kind = i, typ
    return spans


def entity_metrics(true_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact-span micro precision, recall and F1 (the CoNLL measure)."""
    tp = n_true = n_pred = 0
    for t, p in zip(true_seqs, pred_seqs, strict=True):
        st, sp = bio_spans(t), bio_spans(p)
        tp += len(st & sp)
        n_true += len(st)
        n_pred += len(sp)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "entities": n_true}
