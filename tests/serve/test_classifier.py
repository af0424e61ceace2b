"""The Classifier: length-sorted batches give the same answers, padded only to their own longest; int8 keeps accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gristmill.serve.loading import load_classifier
from gristmill.train.forward import plan_batches

from .conftest import task_test_split


class RecordingBackend:
    """Wraps a real backend and records the shape of every batch it is given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.shapes: list[tuple[int, int]] = []

    def logits(self, input_ids, attention_mask, token_type_ids):
        self.shapes.append(input_ids.shape)
        return self.inner.logits(input_ids, attention_mask, token_type_ids)


def test_length_sorted_batches_match_one_at_a_time(tiny_ft: Path) -> None:
    clf = load_classifier(tiny_ft, batch_size=8)
    texts, _ = task_test_split(40)
    batched = clf.predict_proba(texts)
    single = np.stack([clf.predict_proba([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert np.allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_batches_are_padded_only_to_their_own_longest(tiny_ft: Path) -> None:
    clf = load_classifier(tiny_ft, batch_size=8)
    clf.backend = recorder = RecordingBackend(clf.backend)
    texts, _ = task_test_split(64)
    clf.predict_proba(texts)
    lengths = sorted(len(ids) for ids, _ in clf.encode(texts))
    assert sum(rows for rows, _ in recorder.shapes) == 64 and max(rows for rows, _ in recorder.shapes) <= 8
    # Batches take consecutive runs of the length-sorted texts, each padded to its own longest.
    start = 0
    for rows, width in recorder.shapes:
        assert width == max(lengths[start : start + rows])
        start += rows
    padded = sum(rows * width for rows, width in recorder.shapes)
    unsorted = [len(ids) for ids, _ in clf.encode(texts)]
    assert padded < sum(8 * max(unsorted[i : i + 8]) for i in range(0, 64, 8))  # file order, batches of 8
    assert padded <= sum(8 * max(lengths[i : i + 8]) for i in range(0, 64, 8))  # sorted, fixed batches of 8
    assert clf.forward_passes == len(recorder.shapes)


def test_plan_batches_trades_padding_against_passes() -> None:
    # Mixed lengths: short texts are not padded to the long ones...
    assert plan_batches([10, 12, 15, 20, 22, 30, 35, 40, 45, 60, 70, 90, 110, 128, 128], 32) != [(0, 15)]
    # ...equal lengths fill whole batches (the pass cost decides), and nothing is lost or reordered.
    cuts = plan_batches([20] * 100, 32)
    assert len(cuts) == 4 and all(stop - start <= 32 for start, stop in cuts)
    assert cuts[0][0] == 0 and cuts[-1][1] == 100 and all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    assert plan_batches([], 8) == [] and plan_batches([5], 8) == [(0, 1)]


def test_torch_int8_accuracy_within_one_point(tiny_ft: Path) -> None:
    texts, gold = task_test_split()
    fp32 = load_classifier(tiny_ft)
    int8 = load_classifier(tiny_ft, quantize="int8")
    assert int8.backend.name == "torch-int8"
    acc = [float(np.mean([c.labels[i] == g for i, g in zip(c.predict_proba(texts).argmax(1), gold, strict=True)]))
           for c in (fp32, int8)]
    assert abs(acc[0] - acc[1]) <= 0.01
    assert acc[0] > 0.25  # the fixture model has learnt something (chance is 1/6)
