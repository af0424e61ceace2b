"""``gristmill ablate``: what each data decision buys, at equal compute.

Runs the existing verbs once per variant and cell, in this order, each into its own folder of ``ABL/``::

    ABL/spec.json                     the spec that made the folder (a resumed ablation must match it)
    ABL/split/                        `run`: the raw corpus minus the held-out documents (and minus task
                                      text when task.decontaminate): the training pool every variant starts from
    ABL/heldout/corpus/               `run`: the held-out documents, cleaned with heldout.clean_with's steps
    ABL/variants/<v>/corpus/          `run`: variant v's steps over the pool
    ABL/tokenizer/                    `tokenizer train`: ONE tokenizer for all variants (tokenizer.train_on)
    ABL/variants/<v>/tokens/          `tokenize` with that tokenizer (no val split: evaluation is the held-out text)
    ABL/heldout/tokens/               `tokenize` of the held-out text
    ABL/cells/<v>/<budget>/seed<s>/   `pretrain` (run/) for exactly the budget's tokens, held-out MLM loss at the
                                      end, then `curve` (curve/) at each label count and task seed; cell.json
                                      marks the cell done
    ABL/scratch/                      `curve` from a random encoder, once (it does not depend on the variant)
    ABL/results.jsonl, summary.md, summary.json, ablation.png, phases.json

Every phase skips what a previous (killed) invocation finished: run folders resume shard by shard,
packing resumes unit by unit, pretraining resumes from its last checkpoint, a curve from its
runs.jsonl, and a cell with ``cell.json`` is not touched again. Results are rewritten after every
cell, so a long ablation can be read while it runs.

Why one tokenizer: the comparison is about the data a model is pretrained on, not about vocabularies.
By default it is trained on the training pool (the raw corpus minus held-out text), which contains
every variant's documents, so no variant's cleaning decides the vocabulary the others must use.

This module orchestrates; the statistics are :mod:`.pairing`, the tables and plot :mod:`.report`.
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from gristmill.data.inputs import InputSpec
from gristmill.data.pipeline import Step
from gristmill.data.recipe import build_step
from gristmill.data.run import OutputSpec, Pipeline
from gristmill.data.storage import atomic_write_text
from gristmill.errors import GristmillError
from gristmill.experiments import report
from gristmill.experiments.holdout import HoldOut
from gristmill.experiments.spec import AblationSpec, budget_name
from gristmill.tokenizer import TokenDataset, pack_corpus, train_tokenizer
from gristmill.tokenizer.tokdir import TOKENIZER_JSON
from gristmill.train.metrics import read_metrics
from gristmill.train.tasks import load_sequence_examples, load_task, stratified_sample

if TYPE_CHECKING:
    from gristmill.train.tasks import TaskData


class AblationError(GristmillError):
    """A problem with the output folder or a phase that the user can fix."""


@dataclass
class Cell:
    variant: str
    tokens: int
    seed: int

    def folder(self, abl: Path) -> Path:
        return abl / "cells" / self.variant / budget_name(self.tokens) / f"seed{self.seed}"

    def label(self) -> str:
        return f"{self.variant} @ {budget_name(self.tokens)} tokens, seed {self.seed}"


def plan_cells(spec: AblationSpec) -> list[Cell]:
    """Smallest budget first and every variant for one seed before the next seed, so that a partial
    ablation already holds complete, comparable pairs."""
    return [Cell(v.name, tokens, seed) for tokens in sorted(spec.tokens) for seed in spec.pretrain_seeds
            for v in spec.variants]


# --------------------------------------------------------------------------------------- timing


class Phases:
    """Wall-clock and CPU seconds per phase, summed over resumed invocations (ABL/phases.json)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.is_file() else {}

    @staticmethod
    def _cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), self._cpu()
        yield
        entry = self.data.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "count": 0})
        entry["wall_s"] = round(entry["wall_s"] + time.perf_counter() - wall, 2)
        entry["cpu_s"] = round(entry["cpu_s"] + self._cpu() - cpu, 2)
        entry["count"] += 1
        atomic_write_text(self.path, json.dumps(self.data, indent=2))


# --------------------------------------------------------------------------------------- the phases


def _run(steps: list[Step], input_spec: InputSpec, out: Path, spec: AblationSpec, show: bool, console: Console) -> dict:
    """One `gristmill run` into ``out`` (resumed if it was started); returns its totals."""
    pipeline = Pipeline(input=input_spec, steps=steps or [build_step("noop", {})],
                        output=OutputSpec(path=str(out), format="parquet"))
    result = pipeline.run(workers=spec.workers, resume=True, progress=show, console=console)
    return {"docs_in": result.docs_in, "kept": result.kept, "rejected": result.rejected}


def _pool_input(folder: Path) -> InputSpec:
    return InputSpec(paths=[str(folder / "kept" / "*.parquet")], format="parquet", text_field="text", id_field="id")


def _task_paths(spec: AblationSpec) -> list[str]:
    return [str(spec.task["dev"]), str(spec.task["test"])]


def _decontaminate(spec: AblationSpec) -> list[Step]:
    return [build_step("decontaminate", {"paths": _task_paths(spec)})] if spec.decontaminate else []


def _tokenizer(spec: AblationSpec, abl: Path, show: bool) -> Path:
    out = abl / "tokenizer"
    if (out / "gristmill.json").is_file() and (out / TOKENIZER_JSON).is_file():
        return out
    source = abl / "split" / "kept" if spec.tokenizer_train_on == "pool" else \
        abl / "variants" / spec.tokenizer_train_on / "corpus" / "kept"
    options = dict(spec.tokenizer)
    max_docs = options.pop("max_documents", None)
    options.setdefault("vocab_size", 8000)
    return train_tokenizer([str(source)], out, max_documents=max_docs, show_progress=show, overwrite=True, **options)


def _pack(kept: Path, tokdir: Path, out: Path, spec: AblationSpec, show: bool, console: Console) -> dict[str, Any]:
    manifest = out / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return pack_corpus([str(kept)], tokdir, out, seq_len=spec.seq_len, val_fraction=0.0, workers=spec.workers,
                       resume=True, progress=show, console=console)


def _task(spec: AblationSpec, abl: Path) -> TaskData:
    """The task's splits; dev is cut to ``dev_per_class`` per class (early stopping only) when asked."""
    dev = Path(spec.task["dev"])
    if spec.dev_per_class:
        subset = abl / "task" / f"dev-{spec.dev_per_class}-per-class.jsonl"
        if not subset.is_file():
            sample = stratified_sample(load_sequence_examples(dev, spec.task.get("text_field", "text"),
                                                              spec.task.get("label_field", "label")),
                                       spec.dev_per_class, seed=12345)
            atomic_write_text(subset, "".join(json.dumps({"text": e.text, "label": e.label}) + "\n"
                                              for e in sample.examples))
        dev = subset
    return load_task(spec.task["train"], dev, spec.task["test"], task_type="sequence",
                     max_length=int(spec.task.get("max_length", 128)))


def _pretrain_cell(spec: AblationSpec, cell: Cell, tokens_dir: Path, heldout: TokenDataset, run_dir: Path,
                   show: bool) -> dict[str, Any]:
    """Pretrain for exactly the cell's budget (resuming a killed run), return the held-out evaluation."""
    from gristmill.train import checkpoint as ckpt
    from gristmill.train.pretrain import PretrainConfig, pretrain

    batch = int(spec.pretrain.get("batch_size", 32))
    steps = max(1, math.ceil(cell.tokens / (batch * spec.seq_len)))
    train = TokenDataset(tokens_dir, "train")
    eval_batches = max(1, math.ceil(min(len(heldout), spec.heldout_max_sequences) / batch))
    cfg = PretrainConfig(data=str(tokens_dir), out=str(run_dir), model_size=spec.model_size, steps=steps,
                         seed=cell.seed, eval_every=steps, eval_batches=eval_batches,
                         save_every=max(1, steps // 4), keep=1, resume=True, progress=show, tensorboard=False,
                         **spec.pretrain)
    latest = ckpt.latest_checkpoint(run_dir) if run_dir.is_dir() else None
    finished = latest is not None and ckpt.load_checkpoint(latest).state.step >= steps
    started = time.perf_counter()
    if not finished:
        pretrain(cfg, train_data=train, val_data=heldout)
    rows = read_metrics(run_dir)
    evals = [r for r in rows if r.get("kind") == "eval" and r.get("step") == steps]
    if not evals:
        raise AblationError(f"{run_dir} finished without a held-out evaluation; delete the folder and resume")
    ev = evals[-1]
    # A run finished by an earlier (killed) invocation: its own clock, not this invocation's.
    seconds = ev.get("elapsed_s", 0.0) if finished else time.perf_counter() - started
    return {"steps": steps, "tokens_trained": steps * batch * spec.seq_len,
            "variant_tokens": int(train.tokens), "epochs": steps * batch / max(1, len(train)),
            "heldout_loss": ev["loss"], "heldout_accuracy": ev["accuracy"], "heldout_masked_tokens": ev["masked_tokens"],
            "pretrain_seconds": round(seconds, 1)}


def _curve(spec: AblationSpec, data: TaskData, run_dir: Path, out: Path, init: str,
           log: Callable[[str], None]) -> list[dict]:
    from gristmill.train.curve import run_curve
    from gristmill.train.finetune import FineTuneConfig

    cfg = FineTuneConfig(**(spec.task.get("finetune") or {}))
    run_curve(run_dir, data, spec.per_class, spec.task_seeds, out, cfg, log=log, inits=(init,))
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------- the ablation


def _decisive(fingerprint: dict[str, Any]) -> dict[str, Any]:
    # Cells are named by budget and seed, so adding (or dropping) budgets or seeds leaves finished cells valid.
    return {k: v for k, v in fingerprint.items() if k not in ("tokens", "pretrain_seeds")}


def prepare_folder(spec: AblationSpec, abl: Path, resume: bool) -> None:
    """Create ABL/ or check that a resumed one was made by the same spec."""
    record = abl / "spec.json"
    fingerprint = json.dumps(spec.fingerprint(), indent=2, sort_keys=True, default=str)
    if abl.exists() and any(abl.iterdir()):
        if not resume:
            raise AblationError(f"{abl} already exists and is not empty: pass --resume to continue it")
        if not record.is_file():
            raise AblationError(f"{abl} is not an ablation folder (no spec.json); choose another --out")
        if _decisive(json.loads(record.read_text())) != _decisive(json.loads(fingerprint)):
            raise AblationError(f"{abl} was made by a different spec (only pretrain.tokens and pretrain.seeds may "
                                "change on --resume); choose another --out")
    abl.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, fingerprint)


def ablate(spec: AblationSpec, out: str | Path, resume: bool = False, progress: bool = True,
           console: Console | None = None, threads: int | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the whole ablation; returns the result rows also written to ``results.jsonl``."""
    console = console or Console(stderr=True, soft_wrap=True)
    abl = Path(out)
    prepare_folder(spec, abl, resume)
    phases = Phases(abl / "phases.json")
    if threads:
        import torch

        torch.set_num_threads(threads)

    def say(message: str) -> None:
        console.print(message, highlight=False)

    # -- data: the split, the held-out text, one run per variant
    with phases.measure("data: split and held-out text"):
        say("[bold]data[/]: held-out split" + (" and decontamination" if spec.decontaminate else ""))
        _run([HoldOut(spec.heldout_fraction, "train"), *_decontaminate(spec)], spec.corpus, abl / "split", spec,
             progress, console)
        clean = spec.variant(spec.heldout_clean_with).build()
        _run([HoldOut(spec.heldout_fraction, "heldout"), *_decontaminate(spec), *clean], spec.corpus,
             abl / "heldout" / "corpus", spec, progress, console)
    corpus: dict[str, dict[str, Any]] = {}
    for variant in spec.variants:
        with phases.measure(f"data: variant {variant.name}"):
            say(f"[bold]data[/]: variant {variant.name} ({len(variant.steps)} steps)")
            corpus[variant.name] = _run(variant.build(), _pool_input(abl / "split"),
                                        abl / "variants" / variant.name / "corpus", spec, progress, console)

    # -- one tokenizer, then every variant and the held-out text packed with it
    with phases.measure("tokenizer train"):
        say(f"[bold]tokenizer[/]: trained on {spec.tokenizer_train_on}, shared by every variant")
        tokdir = _tokenizer(spec, abl, progress)
    manifests: dict[str, dict[str, Any]] = {}
    for variant in spec.variants:
        with phases.measure("tokenize"):
            manifests[variant.name] = _pack(abl / "variants" / variant.name / "corpus" / "kept", tokdir,
                                            abl / "variants" / variant.name / "tokens", spec, progress, console)
    with phases.measure("tokenize"):
        _pack(abl / "heldout" / "corpus" / "kept", tokdir, abl / "heldout" / "tokens", spec, progress, console)
    heldout = TokenDataset(abl / "heldout" / "tokens", "train")
    if not len(heldout):
        raise AblationError("no held-out text survived cleaning: raise heldout.fraction")
    for variant in spec.variants:
        if not manifests[variant.name]["splits"]["train"]["sequences"]:
            raise AblationError(f"variant {variant.name!r} kept no text to pretrain on")

    # -- cells: pretrain at each budget and seed, then the curve; scratch once
    data = _task(spec, abl)
    cells = plan_cells(spec)
    done = [c for c in cells if (c.folder(abl) / "cell.json").is_file()]
    say(f"[bold]cells[/]: {len(cells)} in all ({len(spec.variants)} variants x {len(spec.tokens)} budgets x "
        f"{len(spec.pretrain_seeds)} seeds), {len(done)} already done")
    context = {"corpus": corpus, "manifests": {k: m["splits"]["train"] for k, m in manifests.items()},
               "heldout_sequences": min(len(heldout), spec.heldout_max_sequences)}
    for position, cell in enumerate(cells, start=1):
        folder = cell.folder(abl)
        if (folder / "cell.json").is_file():
            continue
        remaining = sum(not (c.folder(abl) / "cell.json").is_file() for c in cells) - 1
        say(f"[bold cyan]\\[cell {position}/{len(cells)}][/] {cell.label()}: pretraining ({remaining} more after this)")
        with phases.measure("pretrain"):
            pre = _pretrain_cell(spec, cell, abl / "variants" / cell.variant / "tokens", heldout, folder / "run",
                                 progress)
        say(f"    held-out MLM loss {pre['heldout_loss']:.4f} after {pre['steps']} steps "
            f"({pre['epochs']:.3g} epochs of {cell.variant}); fine-tuning")
        with phases.measure("curve (fine-tune)"):
            runs = _curve(spec, data, folder / "run", folder / "curve", "pretrained", lambda m: say(f"    {m}"))
        rows = [_row(cell, pre, r) for r in runs]
        atomic_write_text(folder / "cell.json", json.dumps({"cell": cell.__dict__, "pretrain": pre, "rows": rows},
                                                           indent=2))
        report.write(spec, abl, collect_rows(spec, abl), phases.data, context)
    first = cells[0].folder(abl) / "run"
    with phases.measure("curve (fine-tune)"):
        say("[bold]scratch[/]: the same fine-tuning from a random encoder (once; it does not depend on the data)")
        scratch = _curve(spec, data, first, abl / "scratch", "scratch", lambda m: say(f"    {m}"))
    rows = collect_rows(spec, abl, scratch)
    report.write(spec, abl, rows, phases.data, context)
    return rows


def _row(cell: Cell, pre: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {"variant": cell.variant, "tokens": cell.tokens, "pretrain_seed": cell.seed, "per_class": run["per_class"],
            "task_seed": run["seed"], "init": run["init"], "test_accuracy": run["test_accuracy"],
            "test_macro_f1": run["test_macro_f1"], "heldout_loss": pre["heldout_loss"],
            "heldout_accuracy": pre["heldout_accuracy"], "epochs": round(pre["epochs"], 4),
            "variant_tokens": pre["variant_tokens"], "steps": pre["steps"], "finetune_seconds": run["seconds"],
            "pretrain_seconds": pre["pretrain_seconds"]}


def collect_rows(spec: AblationSpec, abl: Path, scratch: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every finished cell's rows in plan order, then the scratch rows (variant ``scratch``, 0 tokens)."""
    rows: list[dict[str, Any]] = []
    for cell in plan_cells(spec):
        marker = cell.folder(abl) / "cell.json"
        if marker.is_file():
            rows.extend(json.loads(marker.read_text())["rows"])
    for run in scratch or []:
        rows.append({"variant": "scratch", "tokens": 0, "pretrain_seed": None, "per_class": run["per_class"],
                     "task_seed": run["seed"], "init": "scratch", "test_accuracy": run["test_accuracy"],
                     "test_macro_f1": run["test_macro_f1"], "heldout_loss": None, "heldout_accuracy": None,
                     "epochs": 0.0, "variant_tokens": 0, "steps": 0, "finetune_seconds": run["seconds"],
                     "pretrain_seconds": 0.0})
    return rows
