"""Command-line verbs of gristmill.data.classify (registered on the main app by gristmill.cli).

``gristmill classify train`` trains the linear quality/toxicity classifier; ``gristmill classify lm``
trains the hashed n-gram language model of the ``perplexity`` step.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)
classify_app = typer.Typer(no_args_is_help=True, help="Train the models of the classifier and perplexity steps.")


@classify_app.command("train")
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (config.json + weights.safetensors)."),
    positive: list[str] = typer.Option([], "--positive", help="JSONL file(s) whose texts get --positive-label."),
    negative: list[str] = typer.Option([], "--negative", help="JSONL file(s) whose texts get --negative-label."),
    input: list[str] = typer.Option([], "--input", "-i", help="JSONL file(s) with a label field (instead of "
                                    "--positive/--negative)."),
    positive_label: str = typer.Option("positive", "--positive-label", help="Label of the --positive texts."),
    negative_label: str = typer.Option("negative", "--negative-label", help="Label of the --negative texts."),
    text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
    label_field: str = typer.Option("label", "--label-field", help="JSON field holding the label (--input)."),
    eval_file: str | None = typer.Option(None, "--eval", help="Labelled JSONL file to report precision/recall on."),
    c: float = typer.Option(4.0, "--c", help="Inverse L2 regularisation strength of the logistic regression."),
    balanced: bool = typer.Option(True, "--balanced/--no-balanced", help="Weight classes by inverse frequency."),
    features: int = typer.Option(20, "--features", help="log2 of the hash buckets (20: 1,048,576)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder."),
) -> None:
    """Train a linear classifier (hashed word uni+bigrams, logistic regression) for the classifier step."""
    from gristmill.data.classify.training import train_folder

    metrics = train_folder(out, positive=positive, negative=negative, inputs=input, positive_label=positive_label,
                           negative_label=negative_label, text_field=text_field, label_field=label_field,
                           eval_file=eval_file, c=c, balanced=balanced, n_features_log2=features,
                           overwrite=overwrite)
    console.print(f"trained on {json.dumps(metrics['trained_on'])} in {metrics['train_seconds']:.1f} s -> {out}", markup=False)
    if "eval" in metrics:
        console.print_json(json.dumps(metrics["eval"]))


@classify_app.command("lm")
def lm(
    input: list[str] = typer.Option(..., "--input", "-i", help="Trusted text: JSONL(.gz) files or OUT/kept folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (config.json + counts.safetensors)."),
    text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
    buckets: int = typer.Option(20, "--buckets", help="log2 of the hash bins per table (20: 1,048,576; 28 MB)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder."),
) -> None:
    """Train the hashed word trigram language model of the perplexity step on trusted text."""
    from gristmill.data.classify.training import train_lm_folder

    config = train_lm_folder(out, input, text_field=text_field, buckets_log2=buckets, overwrite=overwrite)
    console.print(f"trigram model of {config['tokens']:,} tokens ({config['distinct_words']:,} distinct words) "
                  f"in {config['seconds']:.1f} s -> {out}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Import heavy modules inside each command."""
    app.add_typer(classify_app, name="classify")
