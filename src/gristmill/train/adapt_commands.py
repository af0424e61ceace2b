"""Command-line verb ``gristmill adapt`` (registered by gristmill.cli); the work is ``train.adapt.adapt``."""

from __future__ import annotations

from pathlib import Path

import typer

from gristmill.options import (
    BF16_HELP,
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIONS,
    POSITIVE,
    PROGRESS_HELP,
    SEED,
    SEED_HELP,
    THREADS_HELP,
    at_least,
    ranged,
)


def register(app: typer.Typer) -> None:
    """Add ``adapt`` to the main app; torch is imported only when it runs."""

    @app.command()
    def adapt(
        model: Path = typer.Argument(..., help="The pretraining run to continue (RUN)."),
        texts: list[Path] = typer.Option(..., "--texts", help="Unlabelled task texts: JSONL (text field) or plain "
                                         "text, one document per line. Repeat for several files."),
        out: Path = typer.Option(..., "--out", "-o", help="The adapted run folder to write (RUN2)."),
        steps: int = typer.Option(500, "--steps", callback=ranged(COUNT), help="Optimizer steps of continued masked-LM training."),
        batch_size: int = typer.Option(32, "--batch-size", callback=ranged(COUNT), help="Sequences per optimizer step."),
        lr: float | None = typer.Option(None, "--lr", callback=ranged(POSITIVE), help="Peak learning rate (default: the base run's own)."),
        warmup: float = typer.Option(0.06, "--warmup", callback=ranged(NON_NEGATIVE), help="A fraction of --steps (<1) or a step count."),
        mix: Path | None = typer.Option(None, "--mix", help="TOKENS folder of the corpus RUN was pretrained on."),
        mix_share: float = typer.Option(0.0, "--mix-share", callback=ranged(FRACTION), help="Share of training sequences taken from --mix."),
        text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text (JSONL files)."),
        seq_len: int | None = typer.Option(None, "--seq-len", callback=ranged(POSITIONS), help="Tokens per sequence (default: --mix's, else the run's own)."),
        seed: int = typer.Option(0, "--seed", callback=ranged(SEED), help=SEED_HELP),
        eval_every: int = typer.Option(100, "--eval-every", callback=ranged(at_least(0)), help="Validate on held-out task texts every N steps (0 = never)."),
        save_every: int = typer.Option(100, "--save-every", callback=ranged(COUNT), help="Checkpoint every N steps (and at the end)."),
        resume: bool = typer.Option(False, "--resume", help="Continue a killed adaptation in --out exactly."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing adapt run."),
        bf16: bool = typer.Option(False, "--bf16/--fp32", help=BF16_HELP),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
    ) -> None:
        """Task-adaptive pretraining: continue MODEL's masked-LM training on the task's own unlabelled texts."""
        import torch

        from gristmill.train.adapt import AdaptConfig
        from gristmill.train.adapt import adapt as run_adapt

        if threads:
            torch.set_num_threads(threads)
        cfg = AdaptConfig(run=str(model), texts=[str(t) for t in texts], out=str(out), steps=steps,
                          batch_size=batch_size, lr=lr, warmup=warmup, mix=str(mix) if mix else None,
                          mix_share=mix_share, text_field=text_field, seq_len=seq_len, seed=seed,
                          eval_every=eval_every, save_every=save_every, resume=resume, overwrite=overwrite,
                          progress=progress, extra={"bf16": bf16})
        result = run_adapt(cfg)
        summary = f"step {result.step}, {result.tokens:,} tokens, {result.seconds:.0f}s"
        if result.eval:
            summary += f", task val loss {result.eval['loss']:.4f}, masked accuracy {result.eval['accuracy']:.3f}"
        typer.echo(summary, err=True)
        typer.echo(f"adapted run: {out}  (model.safetensors, adapt.json, metrics.jsonl, loss.png)", err=True)
