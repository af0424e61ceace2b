"""Differences against the baseline are paired by seed, with a bootstrap interval."""

from __future__ import annotations

import random

import pytest

from gristmill.experiments.pairing import bootstrap_interval, paired_differences


def rows(effect: float, seed_noise: float, noise: float, seeds: int = 8) -> list[dict]:
    rng = random.Random(0)
    out = []
    for seed in range(seeds):
        shared = rng.gauss(0, seed_noise)  # what every variant of this seed has in common
        for variant, shift in (("raw", 0.0), ("clean", effect)):
            out.append({"variant": variant, "tokens": 1000, "pretrain_seed": seed, "acc": 0.5 + shared + shift
                        + rng.gauss(0, noise)})
    return out


def test_pairing_removes_the_noise_seeds_share() -> None:
    data = rows(effect=0.02, seed_noise=0.2, noise=0.001)
    (d,) = paired_differences(data, "raw", "acc", ("tokens", "pretrain_seed"), ("tokens",))
    assert d.variant == "clean" and d.pairs == 8 and d.group == {"tokens": 1000}
    assert d.mean == pytest.approx(0.02, abs=0.002)
    assert 0 < d.low < 0.02 < d.high < 0.04 and d.includes_zero is False
    # The same numbers unpaired would be swamped by the seed noise (sd 0.2 against an effect of 0.02).
    shuffled = [dict(r, pretrain_seed=(r["pretrain_seed"] + 3) % 8 if r["variant"] == "clean" else r["pretrain_seed"])
                for r in data]
    (u,) = paired_differences(shuffled, "raw", "acc", ("tokens", "pretrain_seed"), ("tokens",))
    assert u.includes_zero is True


def test_rows_without_a_partner_are_left_out_and_one_pair_has_no_interval() -> None:
    data = [{"variant": "raw", "tokens": 1, "pretrain_seed": 0, "acc": 0.5},
            {"variant": "clean", "tokens": 1, "pretrain_seed": 0, "acc": 0.6},
            {"variant": "clean", "tokens": 1, "pretrain_seed": 1, "acc": 0.9},   # no baseline for seed 1
            {"variant": "clean", "tokens": 2, "pretrain_seed": 0, "acc": None}]  # not measured
    (d,) = paired_differences(data, "raw", "acc", ("tokens", "pretrain_seed"), ("tokens",))
    assert d.pairs == 1 and d.mean == pytest.approx(0.1) and d.low is None and d.includes_zero is None


def test_bootstrap_interval_is_reproducible_and_covers_the_mean() -> None:
    values = [0.1, -0.05, 0.02, 0.07, 0.0, 0.03]
    low, high = bootstrap_interval(values)
    assert (low, high) == bootstrap_interval(values)
    assert low < sum(values) / len(values) < high and low < 0 < high
    assert bootstrap_interval([0.3]) == (None, None)
