"""Deterministic synthetic texts for the dedup tests: unrelated texts and their near-duplicates."""

from __future__ import annotations

import random

_VOCAB = [f"{a}{b}{c}" for a in "bcdfghklmnprstvz" for b in "aeiou" for c in ("", "n", "r", "s", "l", "th")]


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(_VOCAB) for _ in range(n)]


def text_of(seed: int, n: int = 120) -> str:
    """A random text of ``n`` words; different seeds give texts with (almost) no common 5-gram."""
    return " ".join(words(random.Random(seed), n))


def edit(text: str, n_edits: int, seed: int) -> str:
    """``text`` with ``n_edits`` words replaced at random places (a near-duplicate)."""
    rng = random.Random(seed)
    w = text.split()
    for i in rng.sample(range(len(w)), n_edits):
        w[i] = rng.choice(_VOCAB) + "x"
    return " ".join(w)
