"""select_domain: DSIR importance resampling keeps the documents like the target, deterministically."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from gristmill.data.recipe import RecipeError, build_step
from gristmill.data.select.dsir import kth_largest, ordered_bits

SEA = ["boat", "sail", "wave", "harbour", "anchor", "tide", "crew", "deck", "mast", "storm", "fish", "net", "shore", "lighthouse"]
CODE = ["function", "compile", "linker", "library", "header", "pointer", "buffer", "kernel", "module", "socket", "thread", "binary"]


def text(rng: random.Random, vocab: list[str], n: int = 40) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def corpus(n: int = 60) -> list[tuple[str, str]]:
    rng = random.Random(0)
    docs = []
    for i in range(n):
        vocab = SEA if i % 3 == 0 else CODE  # every third document is about the sea
        docs.append((f"d{i:03d}", text(rng, vocab)))
    return docs


def target_file(tmp_path: Path) -> str:
    rng = random.Random(1)
    path = tmp_path / "target.jsonl"
    path.write_text("".join(json.dumps({"text": text(rng, SEA, 12)}) + "\n" for _ in range(30)), encoding="utf-8")
    return str(path)


def test_keeps_the_target_like_documents(run_steps, tmp_path: Path) -> None:
    target = target_file(tmp_path)
    out = run_steps(corpus(), [("noop", {}), ("select_domain", {"target": target, "keep": 20})], shard_size=7)
    assert len(out.kept) == 20
    assert all(int(i[1:]) % 3 == 0 for i in out.kept), "a code document was selected over a sea one"
    assert {d.reason for d in out.rejected.values()} == {"select_domain:not_selected"}
    sea = [d.meta["domain_score"] for d in out.kept.values()]
    code = [d.meta["domain_score"] for d in out.rejected.values()]
    assert min(sea) > max(code)
    assert out.stats["steps"][1]["counters"]["selected"] == 20


def test_fraction_and_seed_determinism_across_shards_and_workers(run_steps, tmp_path: Path) -> None:
    target = target_file(tmp_path)
    # A weak target signal so that the Gumbel noise decides part of the selection.
    docs = [(f"m{i}", text(random.Random(i), SEA + CODE, 6)) for i in range(80)]
    a = run_steps(docs, [("noop", {}), ("select_domain", {"target": target, "fraction": 0.25, "seed": 3})],
                  shard_size=5)
    b = run_steps(docs, [("noop", {}), ("select_domain", {"target": target, "fraction": 0.25, "seed": 3})],
                  shard_size=17, workers=2)
    c = run_steps(docs, [("noop", {}), ("select_domain", {"target": target, "fraction": 0.25, "seed": 4})],
                  shard_size=5)
    assert len(a.kept) == 20
    assert set(a.kept) == set(b.kept)
    assert set(a.kept) != set(c.kept), "the seed should change a noisy selection"


def test_kth_largest_matches_sorting() -> None:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=1000) * 50
    keys[:10] = -keys[:10]
    parts = [np.sort(ordered_bits(p)) for p in np.array_split(keys, 7)]
    for k in (1, 17, 500, 1000):
        expected = np.sort(keys)[::-1][k - 1]
        assert kth_largest(parts, k) == int(ordered_bits(np.array([expected]))[0])


def test_ordered_bits_keep_float_order() -> None:
    x = np.array([-np.inf, -1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, np.inf])
    assert (np.diff(ordered_bits(x).astype(object)) >= 0).all()


@pytest.mark.parametrize("params, message", [
    ({}, "target"),
    ({"target": "/nonexistent/t.jsonl", "keep": 3}, "does not exist"),
    ({"target": "T", "keep": 3, "fraction": 0.5}, "exactly one"),
    ({"target": "T"}, "exactly one"),
])
def test_bad_parameters(tmp_path: Path, params: dict, message: str) -> None:
    if params.get("target") == "T":
        params = {**params, "target": target_file(tmp_path)}
    with pytest.raises((RecipeError, ValueError), match=message):
        build_step("select_domain", params)


def test_normalize_to_removes_the_bias_towards_short_documents(run_steps, tmp_path: Path) -> None:
    target = target_file(tmp_path)
    rng = random.Random(5)
    # Long documents mostly about the sea, short ones mostly about code: per n-gram the long ones are
    # nearer the target, though a short document's summed log weight is small whatever it says.
    docs = [(f"long{i}", " ".join(rng.choice(SEA) if rng.random() < 0.8 else rng.choice(CODE) for _ in range(300)))
            for i in range(10)]
    docs += [(f"short{i}", " ".join([rng.choice(SEA), *(rng.choice(CODE) for _ in range(3))])) for i in range(10)]
    steps = [("noop", {}), ("select_domain", {"target": target, "keep": 10, "normalize_to": 256})]
    out = run_steps(docs, steps, shard_size=6)
    assert set(out.kept) == {f"long{i}" for i in range(10)}
