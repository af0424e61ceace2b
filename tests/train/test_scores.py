"""Scores of predictions: exact-span entity precision/recall/F1 over BIO tags (the CoNLL measure)."""

from __future__ import annotations

import pytest

from gristmill.train.scores import bio_spans, entity_metrics


def test_bio_spans_and_entity_f1():
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-PER"]) == {(0, 2, "PER"), (3, 5, "LOC"), (5, 6, "PER")}
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC"]]  # the person span is cut short: wrong
    scores = entity_metrics(gold, pred)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)
