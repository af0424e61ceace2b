"""``gristmill quickstart``: the whole path on the bundled sample, in minutes on a laptop CPU.

clean (``gristmill run`` with ``recipes/web-en.yaml``, or ``recipes/quickstart.yaml`` when the
former is absent) -> tokenizer (``gristmill tokenizer train``) -> packed tokens (``gristmill
tokenize``) -> a tiny pretrained encoder (``gristmill pretrain``) -> task-adaptive pretraining on the
task's training texts (``gristmill adapt``, labels unread) -> fine-tuning on ``sample/task`` from the
pretrained encoder, from the adapted one and from scratch with the same budget -> predictions on the
test file (``gristmill predict``) -> a final table.

Every step but fine-tuning runs as the same command a user would type (printed before it runs), in a
subprocess, so the quickstart exercises the real command line. Artefacts go to ``OUT/``::

    OUT/clean/  OUT/tokenizer/  OUT/tokens/  OUT/pretrain/  OUT/adapt/
    OUT/ft-pretrained/  OUT/ft-adapted/  OUT/ft-scratch/  OUT/curve/ (learning-curve plot)
    OUT/predictions.jsonl  OUT/summary.json

``--lang zh`` runs the same path on the Chinese sample (``sample/zh``: Debian's Chinese manuals and the
man-page section task) with ``recipes/web-zh.yaml``, a tokenizer with the full common Han alphabet, and
adds TF-IDF over character n-grams to the table (:data:`LANGUAGES` holds what differs).

This module only orchestrates; each step's work belongs to its own package.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import typer

from gristmill.console import console
from gristmill.errors import GristmillError
from gristmill.folders import write_record
from gristmill.options import COUNT, THREADS_HELP, ranged

Log = Callable[[str], None]


class QuickstartError(GristmillError):
    """A step failed or the sample is missing; the message says which and where its output is."""


@dataclass(frozen=True)
class Setting:
    """The budget of one quickstart mode."""

    vocab_size: int
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    seq_len: int
    finetune_epochs: int | None
    finetune_lr: float | None
    adapt_steps: int = 300
    """Steps of ``gristmill adapt`` on the task's training texts (batch: ``pretrain_batch``)."""
    curve_per_class: tuple[int, ...] = (8, 32)
    """Labels per class of the learning-curve plot (pretrained vs scratch at each)."""


FULL = Setting(vocab_size=8000, pretrain_steps=3000, pretrain_batch=32, pretrain_lr=2e-3, seq_len=128, finetune_epochs=None,
               finetune_lr=None)
FAST = Setting(vocab_size=4000, pretrain_steps=40, pretrain_batch=16, pretrain_lr=2e-3, seq_len=128, finetune_epochs=3,
               finetune_lr=None, adapt_steps=10, curve_per_class=(4, 16))


@dataclass(frozen=True)
class Language:
    """What the quickstart does differently for one language's sample."""

    sample: str                      # the sample folder, relative to the repository root
    recipes: tuple[str, ...]         # first one found under recipes/ cleans the corpus
    tokenizer_args: tuple[str, ...]  # `gristmill tokenizer train` options: the kind and its settings
    vocab_size: tuple[int, int]      # (full, fast); None-free so the Setting stays shared
    char_tfidf: bool                 # add TF-IDF over character n-grams to the table
    seq_len: int = 128               # pretraining sequence and fine-tuning --max-length, in tokens


LANGUAGES = {
    "en": Language("sample", ("web-en.yaml", "quickstart.yaml"), ("--kind", "wordpiece"),
                   (FULL.vocab_size, FAST.vocab_size), False),
    # Unigram pieces across Han characters (--no-cjk), so frequent words such as 函数 or 配置文件 are one token:
    # +10.4 / +6.9 / +1.3 points at 8 / 16 / 32 labels per class over one token per character, at equal
    # pretraining compute (benchmarks/results/chinese.md, section 8). Every common Han character still gets
    # a token (tokenizer/train.py: cjk_alphabet), and unigram keeps every character of the corpus, so the
    # vocabulary must hold the sample's 14,700 of both. The task's texts are a median of 122 tokens, at most
    # 189: 256 reads every one whole (section 6).
    "zh": Language("sample/zh", ("web-zh.yaml",), ("--kind", "unigram", "--no-cjk", "--alphabet", "cjk"),
                   (20000, 16000), True, seq_len=256),
}


def find_repo(sample: Path | None, lang: str = "en") -> tuple[Path, Path]:
    """(working directory for the recipes, the sample folder)."""
    depth = len(Path(LANGUAGES[lang].sample).parts)
    if sample is not None:
        sample = Path(sample).resolve()
        root = sample.parents[depth - 1]
    else:
        root = Path(__file__).resolve().parents[2]  # src/gristmill/quickstart.py -> repository root
        sample = root / LANGUAGES[lang].sample
    needed = [sample / "corpus.jsonl.gz", *(sample / "task" / f"{s}.jsonl" for s in ("train", "dev", "test"))]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise QuickstartError(f"the bundled sample is missing ({', '.join(missing)}); run from a clone of the "
                              "repository or pass --sample SAMPLE_DIR")
    return root, sample


def pick_recipe(root: Path, lang: str = "en") -> Path:
    names = LANGUAGES[lang].recipes
    for name in names:
        if (root / "recipes" / name).is_file():
            return root / "recipes" / name
    raise QuickstartError(f"no recipe: expected {' or '.join(str(root / 'recipes' / n) for n in names)}")


def run_step(name: str, args: list[str], cwd: Path, log: Log, logfile: Path) -> float:
    """Run ``gristmill ARGS`` in a subprocess; its output goes to the terminal and to ``logfile``."""
    command = [sys.executable, "-m", "gristmill", *args]
    log(f"\n[bold]{name}[/]: gristmill {' '.join(shlex.quote(a) for a in args)}")
    t0 = time.perf_counter()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "true")}
    with logfile.open("a", encoding="utf-8") as f:
        f.write(f"$ gristmill {' '.join(shlex.quote(a) for a in args)}\n")
        f.flush()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, encoding="utf-8", errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            sys.stderr.write("    " + line)
        code = proc.wait()
    seconds = time.perf_counter() - t0
    if code not in (0,):
        raise QuickstartError(f"step '{name}' failed with exit status {code}; its output is in {logfile}")
    log(f"    done in {seconds:.1f}s")
    return seconds


def run_quickstart(out: str | Path = "runs/quickstart", *, fast: bool = False, sample: Path | None = None,
                   threads: int | None = None, log: Log = print, lang: str = "en") -> dict[str, Any]:
    """Run every step; returns (and writes to ``OUT/summary.json``) where things are and the scores."""
    if lang not in LANGUAGES:
        raise QuickstartError(f"no quickstart for language {lang!r}: use one of {', '.join(LANGUAGES)}")
    language = LANGUAGES[lang]
    setting = FAST if fast else FULL
    # Longer sequences, fewer of them: the same tokens per pretraining step.
    batch = max(1, setting.pretrain_batch * setting.seq_len // language.seq_len)
    setting = Setting(**{**asdict(setting), "vocab_size": language.vocab_size[1 if fast else 0],
                         "seq_len": language.seq_len, "pretrain_batch": batch})
    root, sample_dir = find_repo(sample, lang)
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    logfile = out_dir / "quickstart.log"
    logfile.write_text("", encoding="utf-8")
    paths = {name: out_dir / name for name in ("clean", "tokenizer", "tokens", "pretrain", "adapt", "ft-pretrained",
                                               "ft-adapted", "ft-scratch")}
    paths["predictions"] = out_dir / "predictions.jsonl"
    recipe = pick_recipe(root, lang)
    thread_args = ["--threads", str(threads)] if threads else []
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    log(f"gristmill quickstart ({'fast' if fast else 'full'} setting, {lang}) -> {out_dir}")

    seconds["clean"] = run_step("clean", [
        "run", str(recipe), "--input", str(sample_dir / "corpus.jsonl.gz"), "--out", str(paths["clean"]),
        "--overwrite", "--no-progress"], root, log, logfile)
    seconds["tokenizer"] = run_step("tokenizer", [
        "tokenizer", "train", "--input", str(paths["clean"] / "kept"), *language.tokenizer_args,
        "--vocab-size", str(setting.vocab_size), "--out", str(paths["tokenizer"]),
        "--overwrite", "--no-progress"],
        root, log, logfile)
    seconds["tokenize"] = run_step("tokenize", [
        "tokenize", "--input", str(paths["clean"] / "kept"), "--tokenizer", str(paths["tokenizer"]),
        "--seq-len", str(setting.seq_len), "--out", str(paths["tokens"]), "--overwrite", "--no-progress"],
        root, log, logfile)
    steps = setting.pretrain_steps
    seconds["pretrain"] = run_step("pretrain", [
        "pretrain", "--data", str(paths["tokens"]), "--model-size", "tiny", "--steps", str(steps),
        "--batch-size", str(setting.pretrain_batch), "--lr", str(setting.pretrain_lr), "--eval-every", str(max(steps // 4, 10)),
        "--log-every", str(max(steps // 10, 5)), "--save-every", str(steps), "--keep", "1",
        "--out", str(paths["pretrain"]), "--overwrite", "--no-progress", *thread_args], root, log, logfile)
    # Task-adaptive pretraining on the training file's texts only (adapt reads no labels); dev and test
    # texts stay unseen, so the adapted row is scored like the others.
    steps = setting.adapt_steps
    seconds["adapt"] = run_step("adapt", [
        "adapt", str(paths["pretrain"]), "--texts", str(sample_dir / "task" / "train.jsonl"), "--steps", str(steps),
        "--batch-size", str(setting.pretrain_batch), "--eval-every", str(max(steps // 4, 1)),
        "--save-every", str(steps), "--out", str(paths["adapt"]), "--overwrite", "--no-progress", *thread_args],
        root, log, logfile)

    results = {}
    for init in ("pretrained", "adapted", "scratch"):
        key = "pretrained + adapt" if init == "adapted" else init
        results[key], seconds[f"finetune-{init}"] = _finetune(init, paths, sample_dir, setting, threads, log)
    results["tfidf-logreg"] = _baseline(sample_dir)  # the baseline beside the model, same data

    paths["curve"] = out_dir / "curve"
    seconds["curve"] = _learning_curve(paths, sample_dir, setting, log)

    if language.char_tfidf:
        results["tf-idf (char 1-3-grams)"], seconds["tfidf"] = _char_tfidf(sample_dir, log)

    seconds["predict"] = run_step("predict", [
        "predict", str(paths["ft-pretrained"]), "--input", str(sample_dir / "task" / "test.jsonl"),
        "--out", str(paths["predictions"]), "--no-progress", *thread_args], root, log, logfile)

    total = time.perf_counter() - t_start
    summary = {
        "setting": "fast" if fast else "full",
        "lang": lang,
        "classes": len({json.loads(line)["label"] for line in (sample_dir / "task" / "train.jsonl").open(encoding="utf-8")
                        if line.strip()}),
        "budget": asdict(setting),
        "recipe": str(recipe),
        "artefacts": {k: str(v) for k, v in paths.items()},
        "seconds": {**{k: round(v, 1) for k, v in seconds.items()}, "total": round(total, 1)},
        "results": results,
    }
    write_record(out_dir / "summary.json", summary)
    _print_summary(summary, paths, log)
    return summary


def _finetune(init: str, paths: dict[str, Path], sample_dir: Path, setting: Setting, threads: int | None,
              log: Log) -> tuple[dict[str, Any], float]:
    """Fine-tune in this process (saves a second torch start-up); prints the equivalent command."""
    import torch

    from gristmill.train.finetune import FineTuneConfig, finetune
    from gristmill.train.tasks import load_task

    if threads:
        torch.set_num_threads(threads)
    out = paths[f"ft-{init}"]
    model = paths["adapt"] if init == "adapted" else paths["pretrain"]  # scratch reads only the config
    task = sample_dir / "task"
    args = ["finetune", "--model", str(model), "--train", str(task / "train.jsonl"),
            "--dev", str(task / "dev.jsonl"), "--test", str(task / "test.jsonl"), "--max-length", str(setting.seq_len),
            "--out", str(out), "--overwrite"]
    if init == "scratch":
        args.append("--from-scratch")
    if setting.finetune_epochs:
        args += ["--epochs", str(setting.finetune_epochs)]
    log(f"\n[bold]fine-tune ({init})[/]: gristmill {' '.join(shlex.quote(a) for a in args)}")
    t0 = time.perf_counter()
    data = load_task(task / "train.jsonl", task / "dev.jsonl", task / "test.jsonl", max_length=setting.seq_len)
    cfg = FineTuneConfig(lr=setting.finetune_lr, epochs=setting.finetune_epochs)
    metrics = finetune(model, data, cfg, out=out, from_scratch=init == "scratch", overwrite=True,
                       log=lambda m: log(f"    {m}")).metrics
    seconds = time.perf_counter() - t0
    log(f"    done in {seconds:.1f}s")
    return {
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "dev_accuracy": metrics["dev"]["accuracy"],
        "train_examples": metrics["train_examples"],
        "steps": metrics["training"]["steps"],
    }, seconds


def _baseline(sample_dir: Path) -> dict[str, Any]:
    """TF-IDF + logistic regression on the same training file, scored on the same test file."""
    from gristmill.train.baseline import tfidf_logreg
    from gristmill.train.tasks import load_sequence_examples

    task = sample_dir / "task"
    train = load_sequence_examples(task / "train.jsonl")
    scores = tfidf_logreg(train, load_sequence_examples(task / "test.jsonl"))
    return {"test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"], "dev_accuracy": None,
            "train_examples": len(train), "steps": None}


def _learning_curve(paths: dict[str, Path], sample_dir: Path, setting: Setting, log: Log) -> float:
    """A small learning curve (a few labels per class, pretrained vs scratch, one seed): OUT/curve/curve.png."""
    from gristmill.train.curve import run_curve
    from gristmill.train.finetune import FineTuneConfig
    from gristmill.train.tasks import load_task

    task = sample_dir / "task"
    sizes = list(setting.curve_per_class)
    log(f"\n[bold]learning curve[/]: gristmill curve --model {paths['pretrain']} --train {task / 'train.jsonl'} "
        f"--dev {task / 'dev.jsonl'} --test {task / 'test.jsonl'} --per-class {','.join(map(str, sizes))} --seeds 1 "
        f"--max-length {setting.seq_len} --out {paths['curve']}")
    t0 = time.perf_counter()
    data = load_task(task / "train.jsonl", task / "dev.jsonl", task / "test.jsonl", max_length=setting.seq_len)
    run_curve(paths["pretrain"], data, sizes, [0], paths["curve"],
              FineTuneConfig(lr=setting.finetune_lr, epochs=setting.finetune_epochs), overwrite=True,
              log=lambda m: log(f"    {m}"))
    seconds = time.perf_counter() - t0
    log(f"    done in {seconds:.1f}s: {paths['curve'] / 'curve.png'}")
    return seconds


def _char_tfidf(sample_dir: Path, log: Log) -> tuple[dict[str, Any], float]:
    """The non-neural peer on the same training file (train.baseline, character n-grams)."""
    from gristmill.train.baseline import tfidf_scores
    from gristmill.train.tasks import load_task

    task = sample_dir / "task"
    log("\n[bold]TF-IDF over character n-grams + logistic regression[/] (gristmill.train.baseline)")
    t0 = time.perf_counter()
    scores = tfidf_scores(load_task(task / "train.jsonl", None, task / "test.jsonl"), analyzer="char")
    return scores, time.perf_counter() - t0


def _print_summary(summary: dict[str, Any], paths: dict[str, Path], log: Log) -> None:
    from rich.console import Console
    from rich.table import Table

    log("\n[bold]artefacts[/]")
    described = {
        "clean": "cleaned corpus: kept/, rejected/ (with reasons), stats.json",
        "tokenizer": "tokenizer: a Hugging Face folder; gristmill.json says how it was trained",
        "tokens": "packed token shards + manifest",
        "pretrain": "pretrained tiny encoder: model.safetensors, metrics.jsonl, loss.png",
        "adapt": "the encoder after task-adaptive pretraining on the training texts: model.safetensors, adapt.json",
        "ft-pretrained": "classifier fine-tuned from the pretrained encoder (metrics.json)",
        "ft-adapted": "same classifier fine-tuned from the adapted encoder (metrics.json)",
        "ft-scratch": "same classifier trained from random weights, same budget (metrics.json)",
        "predictions": "test-set predictions with probabilities",
        "curve": "learning curve at a few labels per class: curve.png, curve.md",
    }
    for key, text in described.items():
        log(f"  {str(paths[key]):<60} {text}")
    classes = summary.get("classes", 6)
    table = Table(title=f"sample task ({summary['results']['pretrained']['train_examples']} training examples, "
                        f"{classes} classes): pretrained vs scratch vs TF-IDF")
    for col in ("encoder", "test accuracy", "test macro-F1", "dev accuracy", "steps"):
        table.add_column(col, justify="left" if col == "encoder" else "right")
    for init, r in summary["results"].items():
        dev = "" if r.get("dev_accuracy") is None else f"{r['dev_accuracy']:.4f}"
        table.add_row("TF-IDF + logistic regression" if init == "tfidf-logreg" else init, f"{r['test_accuracy']:.4f}",
                      f"{r['test_macro_f1']:.4f}", dev, "" if r.get("steps") is None else str(r["steps"]))
    Console(stderr=True).print(table)
    results = summary["results"]
    scratch = results["scratch"]["test_accuracy"]
    adapted = 100 * (results["pretrained + adapt"]["test_accuracy"] - scratch)
    gap = 100 * (results["pretrained"]["test_accuracy"] - scratch)
    log(f"pretrained - scratch: {gap:+.1f} accuracy points")
    log(f"pretrained + adapt - scratch: {adapted:+.1f} accuracy points; total time {summary['seconds']['total']:.0f}s "
        f"(summary: {paths['clean'].parent / 'summary.json'})")
    log("does cleaning help on your own data? `gristmill ablate SPEC.yaml --out ABL/` compares recipes at equal compute "
        "(docs/ablate.md)")


def _print(message: str) -> None:
    console.print(message, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``quickstart`` verb (called by gristmill.cli, like the packages' ``commands.register``)."""

    @app.command()
    def quickstart(
        out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Folder for every artefact."),
        fast: bool = typer.Option(False, "--fast", help="Shortened setting (about 2 minutes) for CI and a first look."),
        sample: Path | None = typer.Option(None, "--sample", help="The bundled sample folder (default: found next to the package)."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        lang: Literal["en", "zh"] = typer.Option("en", "--lang", help="en: the English sample; zh: the Chinese sample (sample/zh, recipes/web-zh.yaml)."),
    ) -> None:
        """Run the whole path on the bundled sample: clean -> tokenizer -> pretrain -> adapt -> fine-tune -> evaluate."""

        if lang != "en" and out == Path("runs/quickstart"):
            out = Path(f"runs/quickstart-{lang}")
        run_quickstart(out, fast=fast, sample=sample, threads=threads, log=_print, lang=lang)
