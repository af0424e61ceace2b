"""Command-line verbs for fine-tuning and learning curves (registered by gristmill.cli).

Each verb parses options, calls one function (``train.finetune.finetune``, ``train.curve.run_curve``)
and prints the result; errors the user can fix become messages. The ``quickstart`` verb is registered
by ``gristmill.quickstart``, which sits above train.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from gristmill.console import info
from gristmill.folders import FinetunedFolder
from gristmill.options import (
    BF16_HELP,
    COUNT,
    DEVICE_HELP,
    JSON_HELP,
    POSITIONS,
    POSITIVE,
    SEED,
    SEED_HELP,
    THREADS_HELP,
    Device,
    ranged,
)
from gristmill.verbosity import print_json

if TYPE_CHECKING:
    from rich.table import Table

    from gristmill.train.tasks import TaskData


def _threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))


def _config(lr: float | None, batch_size: int, epochs: int | None, patience: int, class_weights: bool,
            **recipe: Any) -> Any:
    from gristmill.train.finetune import FineTuneConfig

    return FineTuneConfig(lr=lr, batch_size=batch_size, epochs=epochs, patience=patience, class_weights=class_weights,
                          **{k: v for k, v in recipe.items() if v is not None})


# The few-label recipe's options (docs/finetuning.md), shared by finetune and curve.
def _layer_decay() -> Any:
    return typer.Option(None, "--layer-decay", help="Layer-wise LR decay: each block below the top learns at this "
                        "times the rate of the one above (1 = off).")


def _reinit_layers() -> Any:
    return typer.Option(None, "--reinit-layers", help="Re-initialise this many top encoder blocks before fine-tuning.")


def _bf16() -> Any:
    return typer.Option(False, "--bf16/--fp32", help=BF16_HELP)


def _device() -> Any:
    return typer.Option("auto", "--device", help=DEVICE_HELP)


def _pooling() -> Any:
    return typer.Option(None, "--pooling", help="What the classification head sees: the [CLS] vector or the mean.")


def _load(train: Path, dev: Path | None, test: Path | None, task: str, text_field: str, label_field: str,
          pair_field: str | None, tokens_field: str, tags_field: str, max_length: int) -> TaskData:
    from gristmill.train.tasks import load_task

    return load_task(train, dev, test, task_type=task, text_field=text_field, label_field=label_field,
                     pair_field=pair_field, tokens_field=tokens_field, tags_field=tags_field, max_length=max_length)


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    from rich.table import Table

    splits = [(name, metrics[name]) for name in ("dev", "test") if metrics.get(name)]
    entities = any("entity" in m for _, m in splits)
    table = Table(title=title)
    for col in ("split", "examples" if not entities else "words", "accuracy", "macro-F1",
                *(["entity F1"] if entities else [])):
        table.add_column(col, justify="right" if col != "split" else "left")
    for name, m in splits:
        entity = [f"{m['entity']['f1']:.4f}"] if entities else []
        table.add_row(name, f"{m['examples']:,}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", *entity)
    return table


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the main app. Import heavy modules inside each command."""

    @app.command()
    def finetune(
        model: Path = typer.Option(..., "--model", help="Pretrained RUN folder (gristmill pretrain --out)."),
        train: Path = typer.Option(..., "--train", help="Training JSONL."),
        out: Path = typer.Option(..., "--out", "-o", help="Output FT folder."),
        dev: Path | None = typer.Option(None, "--dev", help="Dev JSONL: early stopping and model selection."),
        test: Path | None = typer.Option(None, "--test", help="Test JSONL: scored once, at the end."),
        task: Literal["auto", "sequence", "token"] = typer.Option("auto", "--task", help="sequence, token (NER-style tokens+tags) or auto."),
        text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
        label_field: str = typer.Option("label", "--label-field", help="JSON field holding the label."),
        pair_field: str | None = typer.Option(None, "--pair-field", help="Second text field: classify text pairs."),
        tokens_field: str = typer.Option("tokens", "--tokens-field", help="Token task: the list of words."),
        tags_field: str = typer.Option("tags", "--tags-field", help="Token task: one tag per word."),
        per_class: int | None = typer.Option(None, "--per-class", callback=ranged(COUNT), help="Stratified sample of N training examples per class."),
        seed: int = typer.Option(0, "--seed", callback=ranged(SEED), help=SEED_HELP + " Seeds the sample, the head's initialisation and the order."),
        from_scratch: bool = typer.Option(False, "--from-scratch", help="Same architecture, random weights, same budget."),
        tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer folder (default: RUN/tokenizer)."),
        max_length: int = typer.Option(128, "--max-length", callback=ranged(POSITIONS), help="Tokens per example, [CLS] and [SEP] included."),
        lr: float | None = typer.Option(None, "--lr", callback=ranged(POSITIVE), help="Peak learning rate, warm-up over 10% then linear decay "
                                        "(default: 3e-4 for tiny/mini, 1e-4 small/medium, 3e-5 base)."),
        batch_size: int = typer.Option(16, "--batch-size", callback=ranged(COUNT), help="Examples per optimizer step."),
        epochs: int | None = typer.Option(None, "--epochs", callback=ranged(COUNT), help="Default: enough for 300 steps, between 3 and 50."),
        patience: int = typer.Option(5, "--patience", callback=ranged(COUNT), help="Stop after this many dev evaluations without improvement."),
        class_weights: bool = typer.Option(False, "--class-weights/--no-class-weights",
                                           help="Weigh the loss by inverse class frequency (unbalanced data)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        layer_decay: float | None = _layer_decay(),
        reinit_layers: int | None = _reinit_layers(),
        pooling: Literal["cls", "mean"] | None = _pooling(),
        bf16: bool = _bf16(),
        device: Device = _device(),
        json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Fine-tune a pretrained encoder on a labelled JSONL task; writes FT/ with weights and metrics.json."""
        from rich.console import Console

        from gristmill.train.finetune import finetune as run_finetune

        _threads(threads)
        data = _load(train, dev, test, task, text_field, label_field, pair_field, tokens_field, tags_field,
                     max_length)
        cfg = _config(lr, batch_size, epochs, patience, class_weights, layer_decay=layer_decay,
                      reinit_layers=reinit_layers, pooling=pooling, bf16=bf16, device=device)
        result = run_finetune(model, data, cfg, out=out,
                              from_scratch=from_scratch, per_class=per_class, seed=seed, tokenizer_dir=tokenizer,
                              overwrite=overwrite, log=info)
        m = result.metrics
        if json_out:
            print_json({"out": str(out), "metrics_path": str(FinetunedFolder(out).metrics), **m})
            return
        Console().print(metrics_table(m, f"{m['init']} {m['task']} classifier, {m['train_examples']:,} training examples"))
        info(f"model:   {out}  (config.json, task.json, model.safetensors, tokenizer/)")
        info(f"metrics: {out / 'metrics.json'}")

    @app.command()
    def curve(
        model: Path = typer.Option(..., "--model", help="Pretrained RUN folder."),
        train: Path = typer.Option(..., "--train", help="Training JSONL (sampled per size)."),
        test: Path = typer.Option(..., "--test", help="Test JSONL: every run is scored on it."),
        out: Path = typer.Option(..., "--out", "-o", help="Output CURVE folder (table, runs, PNG)."),
        dev: Path | None = typer.Option(None, "--dev", help="Dev JSONL: early stopping and model selection."),
        per_class: str = typer.Option("8,32,128,all", "--per-class", help="Comma-separated sizes; 'all' = whole file."),
        seeds: int = typer.Option(3, "--seeds", callback=ranged(COUNT), help="Runs per size and init (seeds 0..N-1)."),
        inits: str = typer.Option("pretrained,scratch,tfidf-logreg", "--inits", help="Comma-separated, what to run at each point: pretrained, scratch, tfidf-logreg (sequence tasks)."),
        task: Literal["auto", "sequence", "token"] = typer.Option("auto", "--task", help="sequence, token (NER-style tokens+tags) or auto."),
        text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
        label_field: str = typer.Option("label", "--label-field", help="JSON field holding the label."),
        pair_field: str | None = typer.Option(None, "--pair-field", help="Second text field: classify text pairs."),
        tokens_field: str = typer.Option("tokens", "--tokens-field", help="Token task: the list of words."),
        tags_field: str = typer.Option("tags", "--tags-field", help="Token task: one tag per word."),
        tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer folder (default: RUN/tokenizer)."),
        max_length: int = typer.Option(128, "--max-length", callback=ranged(POSITIONS), help="Tokens per example, [CLS] and [SEP] included."),
        lr: float | None = typer.Option(None, "--lr", callback=ranged(POSITIVE), help="Default: by model width, as for finetune."),
        batch_size: int = typer.Option(16, "--batch-size", callback=ranged(COUNT), help="Examples per optimizer step."),
        epochs: int | None = typer.Option(None, "--epochs", callback=ranged(COUNT), help="Default: enough for 300 steps, between 3 and 50."),
        patience: int = typer.Option(5, "--patience", callback=ranged(COUNT), help="Stop after this many dev evaluations without improvement."),
        class_weights: bool = typer.Option(False, "--class-weights/--no-class-weights", help="Weigh the loss by inverse class frequency (unbalanced data)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Start over instead of resuming CURVE/runs.jsonl."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        layer_decay: float | None = _layer_decay(),
        reinit_layers: int | None = _reinit_layers(),
        pooling: Literal["cls", "mean"] | None = _pooling(),
        bf16: bool = _bf16(),
        device: Device = _device(),
    ) -> None:
        """Learning curve: fine-tune pretrained and from scratch at several labels-per-class, several seeds."""
        from rich.console import Console

        from gristmill.train.curve import markdown_table, parse_inits, parse_sizes, run_curve

        _threads(threads)
        sizes = parse_sizes(per_class)
        chosen = parse_inits(inits)
        data = _load(train, dev, test, task, text_field, label_field, pair_field, tokens_field, tags_field,
                     max_length)
        summary = run_curve(model, data, sizes, list(range(seeds)), out,
                            _config(lr, batch_size, epochs, patience, class_weights, layer_decay=layer_decay,
                                    reinit_layers=reinit_layers, pooling=pooling, bf16=bf16, device=device),
                            tokenizer_dir=tokenizer,
                            overwrite=overwrite, log=info, inits=chosen)
        Console().print(markdown_table(summary))
        info(f"table: {out / 'curve.md'}   plot: {out / 'curve.png'}   runs: {out / 'runs.jsonl'}")
