"""Seed-paired differences against a baseline variant, with a bootstrap 95% interval.

Two rows are a pair when they share everything that is not the variant: the token budget, the
pretraining seed and, for downstream numbers, the label count and the fine-tuning seed (which fixes
the labelled sample and the head's initialisation). Pairing removes the seed-to-seed noise that all
variants share, so a small, consistent difference shows even with few seeds.

The interval is a percentile bootstrap of the mean paired difference (resampling pairs, fixed seed,
so the report is reproducible). With one pair there is no interval; with a handful it is rough,
and the report says how many pairs each interval rests on. This module only computes; it does not
read or write files.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 10_000


@dataclass
class Difference:
    variant: str
    metric: str
    group: dict[str, Any]
    """The budget (and label count) the pairs share."""
    pairs: int
    mean: float
    low: float | None
    high: float | None

    @property
    def includes_zero(self) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return self.low <= 0.0 <= self.high

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "includes_zero": self.includes_zero}


def bootstrap_interval(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean; (None, None) for fewer than two values."""
    if len(values) < 2:
        return None, None
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_differences(rows: Sequence[dict[str, Any]], baseline: str, metric: str, pair_keys: Sequence[str],
                       group_keys: Sequence[str], seed: int = 0) -> list[Difference]:
    """``metric`` of each variant minus the baseline's, paired on ``pair_keys``, summarised per ``group_keys``.

    Rows without the metric (None) are skipped; a pair needs both sides.
    """
    def key(row: dict[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
        return tuple(row[k] for k in keys)

    base = {key(r, pair_keys): r[metric] for r in rows if r["variant"] == baseline and r.get(metric) is not None}
    variants = list(dict.fromkeys(r["variant"] for r in rows if r["variant"] != baseline))
    out: list[Difference] = []
    for variant in variants:
        groups: dict[tuple[Any, ...], list[float]] = {}
        for r in rows:
            if r["variant"] != variant or r.get(metric) is None:
                continue
            other = base.get(key(r, pair_keys))
            if other is None:
                continue
            groups.setdefault(key(r, group_keys), []).append(r[metric] - other)
        for group, diffs in groups.items():
            low, high = bootstrap_interval(diffs, seed=seed)
            out.append(Difference(variant, metric, dict(zip(group_keys, group)), len(diffs),
                                  statistics.fmean(diffs), low, high))
    return out
