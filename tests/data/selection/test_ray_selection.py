"""select_domain and classifier under the Ray executor: the same kept ids, reasons and scores as locally.

Runs only where Ray is installed (the ``dev`` extra); it reuses the Ray head of the executor tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("ray")

from gristmill.data.classify.training import train_folder  # noqa: E402
from gristmill.data.readers.output import read_documents  # noqa: E402
from gristmill.data.recipe import load_recipe  # noqa: E402
from tests.data.selection.test_select_domain import CODE, SEA, target_file, text  # noqa: E402
from tests.data.test_ray_executor import RayHead, _run_ray, ray_head  # noqa: E402, F401

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = pytest.mark.slow


def _rows(out: Path) -> dict[str, tuple]:
    rows = {d.id: (d.reason, d.meta.get("domain_score"), d.meta.get("sea_score")) for d in read_documents(out / "kept")}
    rows.update({d.id: (d.reason, None, None) for d in read_documents(out / "rejected")})
    return rows


def test_select_domain_and_classifier_same_on_ray(ray_head: RayHead, tmp_path: Path) -> None:  # noqa: F811
    rng = random.Random(0)
    docs = [(f"d{i:03d}", text(rng, SEA + CODE if i % 2 else CODE, 20)) for i in range(300)]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs))
    pos = tmp_path / "pos.jsonl"
    neg = tmp_path / "neg.jsonl"
    pos.write_text("".join(json.dumps({"text": text(rng, SEA, 10)}) + "\n" for _ in range(50)))
    neg.write_text("".join(json.dumps({"text": text(rng, CODE, 10)}) + "\n" for _ in range(50)))
    train_folder(tmp_path / "qc", positive=[str(pos)], negative=[str(neg)], positive_label="sea",
                 negative_label="code")
    outs = {}
    for name in ("local", "ray"):
        out = tmp_path / name
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(
            f"input: {{paths: ['{corpus}'], shard_size: 40}}\nsteps:\n  - noop\n"
            f"  - select_domain: {{target: '{target_file(tmp_path)}', fraction: 0.3, seed: 7}}\n"
            f"  - classifier: {{model: '{tmp_path / 'qc'}', columns: {{sea: sea_score}}, reject_label: sea, "
            "threshold: 0.9}\n"
            f"output: {{path: '{out}'}}\n")
        if name == "local":
            load_recipe(recipe).run(workers=1, progress=False)
        else:
            res = _run_ray(recipe, ray_head.address)
            assert res.returncode == 0, res.stderr
        outs[name] = _rows(out)
    assert outs["ray"] == outs["local"]
    reasons = [r[0] for r in outs["local"].values()]
    assert reasons.count("select_domain:not_selected") == 210
