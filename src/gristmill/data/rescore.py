"""``gristmill rescore``: change a filter's thresholds after a run, without running the pipeline again.

A run whose quality filters had ``annotate: true`` stores every measured value as a column of its
kept and rejected output (``gopher_quality.words``, ``gopher_repetition.dup_line_frac``, ...).
``rescore OUT --set gopher_quality.min_words=30 --out OUT2`` re-decides that step from the stored
values and writes OUT2 exactly as a fresh run with the changed threshold would (tested):

- documents rejected before the step, and documents whose verdict at the step does not change,
  are copied (a document still rejected there gets the rule that now fires first);
- documents whose verdict changes (newly kept or newly rejected) are read again from the run's
  input and sent through the changed pipeline, which is the only real work and is proportional to
  the number of changed decisions.

Limits, each refused with a message: OUT must be a complete local run; all ``--set`` keys name one
step, which occurs once, was annotated, and the keys are thresholds (``rescorable``), not settings
that change what is measured; the run has no corpus-wide steps (dedup and decontamination decide
over the whole corpus: run them on OUT2/kept afterwards).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.pipeline import CorpusStep, Step, StepStats, run_steps
from gristmill.data.readers import read_shard
from gristmill.data.readers.output import read_documents
from gristmill.data.recipe import RecipeError, build_step
from gristmill.data.shards import plan_shards
from gristmill.data.steps import text as tx
from gristmill.data.storage import atomic_write_text
from gristmill.data.writers import write_documents
from gristmill.errors import GristmillError

PART_SIZE = 10_000


class RescoreError(GristmillError):
    """A rescore that cannot give the result of a fresh run; the message says why."""


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["gopher_quality.min_words=30"]`` -> ``{"gopher_quality.min_words": 30}`` (values are YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise RescoreError(f"--set {item!r}: write STEP.PARAM=VALUE, for example gopher_quality.min_words=30")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _load_run(out: Path) -> tuple[dict[str, Any], list[Step]]:
    recipe = out / "_work" / "recipe.json"
    if not (out / "stats.json").is_file() or not recipe.is_file():
        raise RescoreError(f"{out} is not a complete local gristmill run (no stats.json or _work/recipe.json)")
    fingerprint = json.loads(recipe.read_text())
    try:
        steps = [build_step(s["name"], dict(s["params"])) for s in fingerprint["steps"]]
    except RecipeError as exc:
        raise RescoreError(f"{out}: cannot rebuild the run's steps: {exc}") from None
    return fingerprint, steps


def changed_pipeline(steps: list[Step], settings: dict[str, Any]) -> tuple[int, list[Step]]:
    """The position of the one step ``settings`` change, and the step list with it changed."""
    names = {key.split(".", 1)[0] for key in settings}
    if len(names) != 1:
        raise RescoreError(f"--set must name one step at a time, got {', '.join(sorted(names))}")
    (name,) = names
    where = [i for i, s in enumerate(steps) if s.name == name]
    if len(where) != 1:
        found = "does not occur" if not where else f"occurs {len(where)} times"
        raise RescoreError(f"step {name!r} {found} in the run (steps: {', '.join(s.name for s in steps)})")
    corpus = [s.name for s in steps if isinstance(s, CorpusStep)]
    if corpus:
        raise RescoreError(f"the run has corpus-wide steps ({', '.join(corpus)}), whose decisions depend on every "
                           "document; rescore a run of per-document steps and run those on its kept output")
    k = where[0]
    step = steps[k]
    if not hasattr(step, "decide") or not getattr(step, "rescorable", ()):
        raise RescoreError(f"step {name!r} cannot be re-decided from stored values (rescorable steps: "
                           "gopher_quality, gopher_repetition, fineweb_quality)")
    if not getattr(step, "annotate", False):
        raise RescoreError(f"the run did not store {name}'s values: run it with `{name}: {{annotate: true}}` once")
    params = step.params()
    for key, value in settings.items():
        param = key.split(".", 1)[1]
        if param not in step.rescorable:
            raise RescoreError(f"{key}: only thresholds can be changed without measuring again "
                               f"({', '.join(step.rescorable)})")
        params[param] = value
    for grams in ("top_n_grams", "dup_n_grams"):
        if f"{name}.{grams}" in settings:
            default = getattr(tx.profile(step.default_language()), grams)
            old = getattr(step, grams) if getattr(step, grams) is not None else default
            new = params[grams] if params[grams] is not None else default
            if sorted(int(n) for n, _ in old) != sorted(int(n) for n, _ in new):
                raise RescoreError(f"{name}.{grams}: the n's must stay {sorted(int(n) for n, _ in old)} "
                                   "(their values were measured); only the limits can change")
    try:
        new_step = build_step(name, params)
    except RecipeError as exc:
        raise RescoreError(str(exc)) from None
    return k, [*steps[:k], new_step, *steps[k + 1:]]


def _reached(doc: Document, later: set[str]) -> bool:
    """Whether the changed step saw ``doc``: kept, or rejected by it or a step after it."""
    return not doc.rejected or (doc.reason or "").split(":", 1)[0] in later


def rescore(out: str | Path, settings: dict[str, Any], dest: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Re-decide one annotated step of run ``out`` with ``settings``; write run ``dest``; return its stats."""
    t0 = time.perf_counter()
    out, dest = Path(out), Path(dest)
    fingerprint, steps = _load_run(out)
    k, new_steps = changed_pipeline(steps, settings)
    step = new_steps[k]
    if dest.exists() and any(dest.iterdir()):
        if not overwrite:
            raise RescoreError(f"{dest} already exists and is not empty: pass --overwrite to replace it")
        if not (dest / "stats.json").is_file():
            raise RescoreError(f"{dest} is not a gristmill run; refusing to delete it")
        shutil.rmtree(dest)
    later = {s.name for s in steps[k:]} - {s.name for s in steps[:k]}
    unchanged: list[Document] = []
    affected: set[str] = set()
    for folder in ("kept", "rejected"):
        for doc in read_documents(out / folder):
            if not _reached(doc, later):
                unchanged.append(doc)
                continue
            fired = [r for r in step.decide(step.scores(doc), step.doc_language(doc)) if r not in step.skip]
            was_rejected_here = doc.rejected and doc.reason.split(":", 1)[0] == step.name
            if bool(fired) != was_rejected_here:
                affected.add(doc.id)
                continue
            if fired:
                doc.reason, doc.detail = f"{step.name}:{fired[0]}", None
            unchanged.append(doc)
    redone = _redo(fingerprint, new_steps, affected, dest)
    kept = [d for d in unchanged + redone if not d.rejected]
    rejected = [d for d in unchanged + redone if d.rejected]
    fmt = fingerprint["output"]["format"]
    for folder, docs, prefix in (("kept", kept, ""), ("rejected", rejected, "s1-")):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for part, start in enumerate(range(0, len(docs), PART_SIZE)):
            write_documents(docs[start:start + PART_SIZE], dest / folder / f"{prefix}part-{part:05d}.{fmt}", fmt)
    stats = {
        "rescored_from": str(out), "set": settings,
        "steps": [{"name": s.name, "params": s.params(),
                   "rejected": dict(sorted(Counter(d.reason.split("=", 1)[0] for d in rejected
                                                   if d.reason.split(":", 1)[0] == s.name).items()))}
                  for s in new_steps],
        "totals": {"docs_in": len(kept) + len(rejected), "kept": len(kept), "rejected": len(rejected),
                   "changed_decisions": len(affected), "seconds": round(time.perf_counter() - t0, 3)},
    }
    fingerprint = {**fingerprint, "steps": [{"name": s.name, "params": s.params()} for s in new_steps],
                   "output": {**fingerprint["output"], "path": str(dest)}}
    atomic_write_text(dest / "_work" / "recipe.json", json.dumps(fingerprint, sort_keys=True, default=str))
    atomic_write_text(dest / "_work" / "errors.json", (out / "_work" / "errors.json").read_text()
                      if (out / "_work" / "errors.json").is_file() else "[]")
    atomic_write_text(dest / "stats.json", json.dumps(stats, indent=2, default=str))
    return stats


def _redo(fingerprint: dict[str, Any], steps: list[Step], ids: set[str], dest: Path) -> list[Document]:
    """Read the ``ids`` from the run's input again and send them through ``steps`` (a fresh run of them)."""
    if not ids:
        return []
    spec = InputSpec(**fingerprint["input"])
    with tempfile.TemporaryDirectory(dir=dest.parent if dest.parent.is_dir() else None) as staging:
        plan = plan_shards(spec, staging=Path(staging))
        docs = [d for shard in plan.shards for d in read_shard(shard, spec) if d.id in ids]
    missing = ids - {d.id for d in docs}
    if missing:
        raise RescoreError(f"{len(missing)} documents whose decision changes are no longer in the run's input "
                           f"({', '.join(spec.paths)}), e.g. {sorted(missing)[0]!r}")
    for pos, s in enumerate(steps):
        s.setup(None, f"rescore-{pos}")
    kept, rejected = run_steps(docs, steps, [StepStats() for _ in steps])
    return kept + rejected


def _comparable(doc: Document) -> tuple[Any, ...]:
    meta = {k: v for k, v in doc.meta.items() if v is not None}
    return doc.id, doc.text, doc.reason, doc.detail, json.dumps(meta, sort_keys=True, default=str)


def compare_outputs(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Whether two runs kept and rejected the same documents with the same text, reasons and columns."""
    result: dict[str, Any] = {}
    for folder in ("kept", "rejected"):
        left = sorted(_comparable(d) for d in read_documents(Path(a) / folder))
        right = sorted(_comparable(d) for d in read_documents(Path(b) / folder))
        result[folder] = len(left)
        result[f"{folder}_identical"] = left == right
        if left != right:
            result[f"{folder}_differences"] = len(set(left) ^ set(right))
    result["identical"] = result["kept_identical"] and result["rejected_identical"]
    return result
