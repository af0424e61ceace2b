"""Run a pipeline over a corpus: stages, shard tasks, resume, stats and the output layout.

Output layout of a run at ``OUT``::

    OUT/kept/part-00000.parquet       documents that passed every step
    OUT/rejected/s1-part-00000.parquet  rejected documents, with ``reason`` (step:rule) and ``detail``
    OUT/stats.json                    per step: documents and bytes in/out, rejections by reason, seconds
    OUT/_work/                        resume state: the recipe, one done-marker per finished shard task,
                                      corpus-step decisions, and the kept shards between stages

Every shard task writes its outputs atomically and then its done-marker, so a killed run can be
resumed with ``resume=True``: finished tasks are skipped, unfinished ones are redone from scratch,
and the result equals an uninterrupted run.

``OUT`` may be a URL on an fsspec filesystem (``s3://bucket/clean``): then ``kept/``, ``rejected/``
and ``stats.json`` are written there, and the resume state, which dedup steps memory-map, lives in
a local work folder instead (``output.work_dir``, by default under ``~/.cache/gristmill/work``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

import gristmill.data.storage as storage
from gristmill.data.document import Document
from gristmill.data.executors import Executor, make_executor
from gristmill.data.fingerprint import InputChanged, check_inputs_unchanged, input_fingerprints
from gristmill.data.idcheck import count_repeated_ids, write_id_hashes
from gristmill.data.inputs import InputSpec, expand_paths
from gristmill.data.pipeline import CorpusStep, Step, StepStats, batched, run_steps, split_stages
from gristmill.data.readers import read_shard
from gristmill.data.readers.output import output_files, read_documents
from gristmill.data.schema import harmonize
from gristmill.data.shards import InputError, Shard, plan_shards
from gristmill.data.storage import atomic_write_text
from gristmill.data.writers import write_documents
from gristmill.errors import GristmillError
from gristmill.progress import progress_bar
from gristmill.provenance import provenance
from gristmill.verbosity import info_console

QUARANTINE_EXIT = 3
LEGACY_RUN = ("_work/recipe.json",)
"""A run output made before output markers: resumable and replaceable like a marked one."""


class RunError(GristmillError):
    """A problem with the run's set-up that the user can fix (existing output, changed recipe, ...)."""


@dataclass
class OutputSpec:
    path: str
    format: str = "parquet"
    work_dir: str | None = None
    """Resume state; default ``OUT/_work``, or a folder under ``~/.cache/gristmill/work`` when OUT is a URL."""

    def resolved_work_dir(self) -> Path:
        if self.work_dir:
            return Path(self.work_dir)
        if storage.is_url(self.path):
            import xxhash

            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            return cache / "gristmill" / "work" / xxhash.xxh64_hexdigest(self.path.rstrip("/").encode())
        return Path(self.path) / "_work"


@dataclass
class ShardTask:
    """One unit of work: run ``steps`` over one input shard (stage 1) or one kept file of the previous stage."""

    stage: int
    index: int
    steps: list[Step]
    spec: InputSpec
    shard: Shard | None
    source_file: str | None
    out_dir: str
    """The run's output (local or URL): ``rejected/`` is written here."""
    work_dir: str
    """The run's local resume state: done-markers and step work folders."""
    kept_dir: str
    fmt: str
    batch_size: int = 1000


@dataclass
class ShardResult:
    stage: int
    index: int
    docs_in: int
    kept: int
    rejected: int
    input_stats: dict[str, Any]
    step_stats: list[dict[str, Any]]


def _done_marker(work_dir: str | Path, stage: int, index: int) -> Path:
    return Path(work_dir) / f"stage{stage}" / "done" / f"{index:05d}.json"


def _ids_file(work_dir: str | Path, index: int) -> Path:
    return Path(work_dir) / "stage1" / "ids" / f"{index:05d}.npy"


def _step_workdir(work_dir: str | Path, stage: int, step_pos: int, step: Step) -> Path:
    return Path(work_dir) / f"stage{stage}" / f"{step_pos:02d}-{step.name}"


def run_shard_task(task: ShardTask) -> ShardResult:
    """Process one shard; safe to run twice (outputs are replaced atomically, the marker comes last)."""
    marker = _done_marker(task.work_dir, task.stage, task.index)
    if marker.exists():
        return ShardResult(**json.loads(marker.read_text()))
    shard_name = f"part-{task.index:05d}"
    for pos, step in enumerate(task.steps):
        step.setup(_step_workdir(task.work_dir, task.stage, pos, step), shard_name)
    if task.shard is not None:
        docs = read_shard(task.shard, task.spec)
    else:
        docs = read_documents(task.source_file)
    stats = [StepStats() for _ in task.steps]
    input_stats = StepStats()
    kept_all: list[Document] = []
    rejected_all: list[Document] = []
    n_in = 0
    for batch in batched(docs, task.batch_size):
        n_in += len(batch)
        for d in batch:
            if d.rejected:
                input_stats.rejected[d.reason] += 1
        kept, rejected = run_steps(batch, task.steps, stats)
        kept_all.extend(kept)
        rejected_all.extend(rejected)
    assert n_in == len(kept_all) + len(rejected_all), "a document was lost"
    if task.stage == 1:
        write_id_hashes([d.id for d in chain(kept_all, rejected_all)], _ids_file(task.work_dir, task.index))
    input_stats.docs_in = n_in
    input_stats.docs_out = n_in - sum(input_stats.rejected.values())
    if kept_all:
        write_documents(kept_all, storage.join(task.kept_dir, f"{shard_name}.{task.fmt}"), task.fmt)
    if rejected_all:
        write_documents(rejected_all, storage.join(task.out_dir, "rejected", f"s{task.stage}-{shard_name}.{task.fmt}"),
                        task.fmt)
    result = ShardResult(task.stage, task.index, n_in, len(kept_all), len(rejected_all),
                         input_stats.to_json(), [s.to_json() for s in stats])
    atomic_write_text(marker, json.dumps(asdict(result)))
    return result


@dataclass
class RunResult:
    out: str
    """The output folder or URL."""
    docs_in: int
    kept: int
    rejected: int
    input_errors: list[InputError] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        """Documents rejected for malformed input plus files that could not be read."""
        return sum(v for k, v in self.stats["input"]["rejected"].items()) + len(self.input_errors)

    @property
    def exit_code(self) -> int:
        return QUARANTINE_EXIT if self.quarantined else 0


@dataclass
class Pipeline:
    """Input, ordered steps and output; ``run`` executes them. The same object a recipe file builds."""

    input: InputSpec
    steps: list[Step]
    output: OutputSpec
    batch_size: int = 1000

    def fingerprint(self) -> dict[str, Any]:
        return {
            "input": asdict(self.input),
            "steps": [{"name": s.name, "params": s.params()} for s in self.steps],
            "output": {"path": self.output.path, "format": self.output.format},
        }

    def run(self, workers: int = 1, resume: bool = False, overwrite: bool = False,
            executor: Executor | None = None, progress: bool = True, console: Console | None = None,
            allow_incomplete: bool = False) -> RunResult:
        """Run the pipeline into its output; ``allow_incomplete`` reads inputs from unfinished gristmill outputs."""
        console = console or info_console()
        out = self.output.path if storage.is_url(self.output.path) else str(Path(self.output.path))
        work = self.output.resolved_work_dir()
        paths = expand_paths(self.input.paths)
        for folder in dict.fromkeys(storage.parent(p) for p in paths):
            storage.require_complete(folder, allow_incomplete)
        storage.check_not_input(out, paths, "the output", inside_folders=True)
        # One process at a time writes an output: a second run on it stops here, before touching anything.
        with storage.output_lock(out):
            self._prepare_output(out, work, resume, overwrite, paths)
            own_executor = executor is None
            executor = executor or make_executor("local", workers)
            t0 = time.perf_counter()
            try:
                return self._run(out, work, executor, progress, console, t0)
            finally:
                if own_executor:
                    executor.close()

    def _prepare_output(self, out: str, work: Path, resume: bool, overwrite: bool, paths: list[str]) -> None:
        recipe_file = work / "recipe.json"
        fingerprint = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        separate_work = storage.is_url(out) or not work.is_relative_to(out)
        if separate_work:
            storage.check_not_input(work, paths, "--work-dir")
        resuming = False
        if storage.has_content(out):
            if overwrite:
                storage.remove_output(out, "run", legacy=LEGACY_RUN)
            elif resume:
                if storage.output_kind(out, LEGACY_RUN) not in ("run", "legacy") and not recipe_file.exists():
                    raise RunError(f"{out} is not the output of a gristmill run; cannot resume into it")
                if recipe_file.exists() and recipe_file.read_text() != fingerprint:
                    raise RunError(f"{out} was made by a different recipe; resume needs the same recipe (or use --overwrite)")
                resuming = True
            else:
                raise RunError(f"{out} already exists and is not empty: pass --resume to continue it or --overwrite to replace it")
        stale = not resume or (recipe_file.exists() and recipe_file.read_text() != fingerprint)
        if separate_work and work.exists() and stale and storage.has_content(work):
            # State left by another run must not mark this run's shards done (unless it is this run, resumed).
            storage.remove_output(work, "work", legacy=("recipe.json",))
        if separate_work:
            storage.mark_output(work, "work")
        inputs_file = work / "inputs.json"
        if resuming and inputs_file.exists():
            try:
                check_inputs_unchanged(json.loads(inputs_file.read_text()), paths)
            except InputChanged as exc:
                raise RunError(str(exc)) from None
        else:
            atomic_write_text(inputs_file, json.dumps(input_fingerprints(paths)))
        if not (resuming and storage.read_marker(out)):
            storage.mark_output(out, "run")
        # Files half-written by a killed process (.NAME.tmp-PID) are never read; we hold the lock, so they go.
        for folder in (storage.join(out, "kept"), storage.join(out, "rejected"), str(work),
                       *map(str, work.glob("stage*/*"))):
            storage.remove_stale_temporaries(folder)
        atomic_write_text(recipe_file, fingerprint)

    def _run(self, out: str, work: Path, executor: Executor, show: bool, console: Console, t0: float) -> RunResult:
        stats_file = storage.join(out, "stats.json")
        if storage.exists(stats_file) and (work / "errors.json").exists():
            # Resuming a run that already completed: nothing is left to do.
            console.print(f"{out} is already complete", markup=False)
            stats_json = json.loads(storage.read_bytes(stats_file))
            errors = [InputError(**e) for e in json.loads((work / "errors.json").read_text())]
            t = stats_json["totals"]
            storage.mark_complete(out, "run")
            return RunResult(out, t["docs_in"], t["kept"], t["rejected"], errors, stats_json)
        plan = plan_shards(self.input, staging=work / "input", executor=executor)
        for err in plan.errors:
            console.print(f"[yellow]input error[/] {escape(str(err))}")
        stages = split_stages(self.steps)
        stats = [StepStats() for _ in self.steps]
        input_stats = StepStats()
        fmt = self.output.format
        offsets = [0]
        for stage in stages:
            offsets.append(offsets[-1] + len(stage))
        n_total = sum((s.stop - s.start) for s in plan.shards if s.stop is not None) or None
        docs_in = kept = rejected = 0
        with progress_bar(show, console) as bar:
            for s_idx, stage_steps in enumerate(stages, start=1):
                last = s_idx == len(stages)
                kept_dir = storage.join(out, "kept") if last else str(work / f"stage{s_idx}" / "kept")
                if s_idx == 1:
                    tasks = [ShardTask(1, sh.index, stage_steps, self.input, sh, None, out, str(work), kept_dir, fmt,
                                       self.batch_size) for sh in plan.shards]
                    total = n_total
                else:
                    prev = work / f"stage{s_idx - 1}" / "kept"
                    files = [Path(f) for f in output_files(prev)]
                    first = stage_steps[0]
                    if isinstance(first, CorpusStep):
                        workdir = _step_workdir(work, s_idx, 0, first)
                        if not first.is_prepared(workdir):
                            workdir.mkdir(parents=True, exist_ok=True)
                            console.print(f"stage {s_idx}: preparing [bold]{first.name}[/] over {len(files)} shards")
                            prep = first.prepare(files, workdir, executor)
                            atomic_write_text(workdir / "prepare_stats.json", json.dumps(prep or {}))
                            atomic_write_text(workdir / "_PREPARED", "")
                        prep_stats = json.loads((workdir / "prepare_stats.json").read_text())
                        stats[offsets[s_idx - 1]].counters.update({k: v for k, v in prep_stats.items() if isinstance(v, (int, float))})
                    tasks = [ShardTask(s_idx, int(f.stem.split("-")[-1]), stage_steps, self.input, None, str(f), out,
                                       str(work), kept_dir, fmt, self.batch_size) for f in files]
                    total = kept
                task_id = bar.add_task(f"stage {s_idx}/{len(stages)}", total=total, rate="")
                stage_kept = 0
                started = time.perf_counter()
                done_docs = 0
                for res in executor.map(run_shard_task, tasks):
                    done_docs += res.docs_in
                    stage_kept += res.kept
                    rejected += res.rejected
                    if s_idx == 1:
                        docs_in += res.docs_in
                        input_stats.merge(StepStats.from_json(res.input_stats))
                    for i, st in enumerate(res.step_stats):
                        stats[offsets[s_idx - 1] + i].merge(StepStats.from_json(st))
                    rate = done_docs / max(1e-9, time.perf_counter() - started)
                    bar.update(task_id, advance=res.docs_in, rate=f"{rate:,.0f} docs/s")
                kept = stage_kept
        # Also when a later stage had nothing left to read: OUT/kept always exists.
        storage.makedirs(storage.join(out, "kept"))
        repeated = count_repeated_ids(sorted((work / "stage1" / "ids").glob("*.npy")))
        if repeated:
            console.print(f"[yellow]warning:[/] {repeated:,} input documents have an id that another input document "
                          "already has (ids compare as strings: 12 and \"12\" are one id); give every record its own "
                          "id, or drop the id field and gristmill derives one from file and line")
        seconds = time.perf_counter() - t0
        stats_json = {
            "input": {"paths": self.input.paths, **input_stats.to_json(),
                      "errors": [str(e) for e in plan.errors], "repeated_ids": repeated},
            "steps": [{"name": s.name, "params": s.params(), **st.to_json()} for s, st in zip(self.steps, stats)],
            "totals": {"docs_in": docs_in, "kept": kept, "rejected": rejected, "seconds": round(seconds, 3),
                       "docs_per_s": round(docs_in / max(seconds, 1e-9), 1)},
            "provenance": provenance(workers=getattr(executor, "workers", None)),
        }
        assert docs_in == kept + rejected, f"accounting broken: {docs_in} in, {kept} kept, {rejected} rejected"
        # One schema per folder, so kept/ and rejected/ each load as one table (datasets, DuckDB).
        for folder in ("kept", "rejected"):
            harmonize(storage.join(out, folder))
        # stats.json marks the run complete; only then may the resume state between stages go.
        atomic_write_text(work / "errors.json", json.dumps([asdict(e) for e in plan.errors]))
        atomic_write_text(stats_file, json.dumps(stats_json, indent=2, default=str))
        storage.mark_complete(out, "run")
        shutil.rmtree(work / "input", ignore_errors=True)
        shutil.rmtree(work / "stage1" / "ids", ignore_errors=True)
        for s_idx in range(1, len(stages)):
            shutil.rmtree(work / f"stage{s_idx}" / "kept", ignore_errors=True)
        return RunResult(out, docs_in, kept, rejected, plan.errors, stats_json)


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"gristmill run -> {result.out}")
    for col in ("step", "in", "out", "rejected", "top reasons", "s"):
        table.add_column(col, justify="right" if col in ("in", "out", "rejected", "s") else "left")
    inp = result.stats["input"]
    table.add_row("input", f"{inp['docs_in']:,}", f"{inp['docs_out']:,}", f"{sum(inp['rejected'].values()):,}",
                  _top(inp["rejected"]), "")
    for step in result.stats["steps"]:
        table.add_row(step["name"], f"{step['docs_in']:,}", f"{step['docs_out']:,}", f"{sum(step['rejected'].values()):,}",
                      _top(step["rejected"]), f"{step['seconds']:.1f}")
    t = result.stats["totals"]
    table.add_row("[bold]total", f"{t['docs_in']:,}", f"{t['kept']:,}", f"{t['rejected']:,}", "", f"{t['seconds']:.1f}")
    return table


def _top(reasons: dict[str, int], n: int = 3) -> str:
    return ", ".join(f"{k.split(':', 1)[-1]}={v}" for k, v in Counter(reasons).most_common(n))


def run_pipeline(pipeline: Pipeline, workers: int = 1, resume: bool = False, overwrite: bool = False,
                 executor_name: str = "local", address: str | None = None, progress: bool = True,
                 allow_incomplete: bool = False) -> RunResult:
    """Run ``pipeline`` on the named executor (``local`` or ``ray``), closing the executor afterwards."""
    executor = make_executor(executor_name, workers, address)
    try:
        return pipeline.run(workers=workers, resume=resume, overwrite=overwrite, executor=executor, progress=progress,
                            allow_incomplete=allow_incomplete)
    finally:
        executor.close()


def count_documents(folder: Path | str) -> int:
    """Documents in a gristmill output folder (local or URL)."""
    n = 0
    for f in output_files(folder):
        if f.endswith(".parquet"):
            n += storage.parquet_file(f).metadata.num_rows
        else:
            with storage.open_file(f, "rb") as fh:
                n += sum(1 for _ in fh)
    return n
