"""Command-line verbs of gristmill.train: ``pretrain`` and ``import-hf``.

Each verb parses its options and calls one function (``pretrain.pretrain``, ``model.hf.import_hf``); torch and transformers are imported inside the commands. Errors a user can
cause are printed as one message, not a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.console import Console

from gristmill.errors import require_extra
from gristmill.folders import RunFolder, read_record
from gristmill.options import (
    BF16_HELP,
    COUNT,
    DEVICE_HELP,
    FRACTION,
    JSON_HELP,
    MASK_PROB,
    NON_NEGATIVE,
    POSITIVE,
    PROGRESS_HELP,
    SEED,
    SEED_HELP,
    THREADS_HELP,
    Device,
    at_least,
    ranged,
)
from gristmill.verbosity import print_json

console = Console(stderr=True, soft_wrap=True)




def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Import heavy modules inside each command."""

    @app.command()
    def pretrain(
        data: Path = typer.Option(..., "--data", help="Packed token shards (TOKENS folder from `gristmill tokenize`)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (RUN)."),
        arch: Literal["encoder", "decoder"] = typer.Option("encoder", "--arch", help="encoder (masked LM) or decoder (causal LM, docs/decoder.md)."),
        doc_mask: bool = typer.Option(True, "--doc-mask/--no-doc-mask",
                                      help="Decoder: keep attention inside each packed document (block-diagonal)."),
        model_size: Literal["tiny", "mini", "small", "medium", "base"] = typer.Option("mini", "--model-size", help="tiny, mini, small, medium or base."),
        config: Path | None = typer.Option(None, "--config", help="Model config JSON (overrides --model-size)."),
        init_from: Path | None = typer.Option(None, "--init-from",
                                              help="Start from this run's weights (e.g. an imported BERT)."),
        steps: int = typer.Option(1000, "--steps", callback=ranged(COUNT), help="Optimizer steps in total."),
        batch_size: int = typer.Option(32, "--batch-size", callback=ranged(COUNT), help="Global batch: sequences per optimizer step."),
        grad_accum: int = typer.Option(1, "--grad-accum", callback=ranged(COUNT), help="Micro-batches per step (per process)."),
        lr: float = typer.Option(5e-4, "--lr", callback=ranged(POSITIVE), help="Peak learning rate."),
        warmup: float = typer.Option(0.06, "--warmup", callback=ranged(NON_NEGATIVE), help="Warmup: a fraction of --steps (<1) or a step count."),
        schedule: Literal["linear", "cosine", "constant"] = typer.Option("linear", "--schedule", help="linear, cosine or constant after warmup."),
        weight_decay: float = typer.Option(0.01, "--weight-decay", callback=ranged(NON_NEGATIVE), help="AdamW weight decay (not on biases and LayerNorms)."),
        clip: float = typer.Option(1.0, "--clip", callback=ranged(NON_NEGATIVE), help="Gradient-norm clipping (0 = off)."),
        bf16: bool = typer.Option(False, "--bf16/--fp32", help=BF16_HELP),
        seed: int = typer.Option(0, "--seed", callback=ranged(SEED), help=SEED_HELP),
        mask_prob: float = typer.Option(0.15, "--mask-prob", callback=ranged(MASK_PROB), help="Share of tokens chosen for prediction."),
        whole_word: bool = typer.Option(False, "--whole-word", help="Mask whole words, not word pieces."),
        nsp: bool = typer.Option(False, "--nsp", help="Add next-sentence prediction (off: see docs)."),
        pre_ln: bool = typer.Option(False, "--pre-ln", help="Pre-LN blocks (default post-LN, as BERT)."),
        dropout: float = typer.Option(0.0, "--dropout", callback=ranged(FRACTION),
                                      help="Dropout while pretraining (BERT: 0.1); config.json keeps 0.1 for fine-tuning."),
        eval_every: int = typer.Option(200, "--eval-every", callback=ranged(at_least(0)), help="Validate every N steps (0 = never)."),
        eval_batches: int = typer.Option(20, "--eval-batches", callback=ranged(COUNT), help="Global batches of validation data to use."),
        log_every: int = typer.Option(10, "--log-every", callback=ranged(COUNT), help="Log the training loss every N steps."),
        save_every: int = typer.Option(500, "--save-every", callback=ranged(COUNT), help="Checkpoint every N steps (and at the end)."),
        keep: int = typer.Option(3, "--keep", callback=ranged(at_least(0)), help="Checkpoints to keep (0 = all)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing run folder first."),
        compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
        device: Device = typer.Option("auto", "--device", help=DEVICE_HELP),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP + " Per process."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
        verify: bool = typer.Option(False, "--verify", help="Check every shard's checksum before training "
                                    "(default: each shard on its first use)."),
        json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Pretrain an encoder (masked LM) or a decoder (--arch decoder, causal LM); also under torchrun."""
        import torch

        from gristmill.train.pretrain import PretrainConfig
        from gristmill.train.pretrain import pretrain as run_pretrain

        if threads:
            torch.set_num_threads(threads)
        cfg = PretrainConfig(
            data=str(data), out=str(out), arch=arch, doc_mask=doc_mask, model_size=model_size, config_file=str(config) if config else None,
            init_from=str(init_from) if init_from else None, steps=steps, batch_size=batch_size,
            grad_accum=grad_accum, lr=lr, warmup=warmup, schedule=schedule, weight_decay=weight_decay, clip=clip,
            bf16=bf16, seed=seed, mask_prob=mask_prob, whole_word=whole_word, nsp=nsp, pre_ln=pre_ln,
            dropout=dropout, eval_every=eval_every, eval_batches=eval_batches, log_every=log_every,
            save_every=save_every, keep=keep, resume=resume, overwrite=overwrite, compile=compile, device=device,
            progress=progress, verify=verify)
        result = run_pretrain(cfg)
        import os

        if os.environ.get("RANK", "0") != "0":
            return
        if json_out:
            print_json({"run": str(result.run_dir), "arch": arch, "step": result.step, "tokens": result.tokens,
                        "seconds": result.seconds, "train_loss": result.train_loss, "eval": result.eval or None})
            return
        summary = f"step {result.step}, {result.tokens:,} tokens, {result.seconds:.0f}s"
        if result.train_loss is not None:
            summary += f", train loss {result.train_loss:.4f}"
        if result.eval:
            kind = "next-token" if arch == "decoder" else "masked"
            summary += (f", val loss {result.eval['loss']:.4f}, {kind} accuracy {result.eval['accuracy']:.3f}, "
                        f"perplexity {result.eval['perplexity']:.1f}")
        console.print(summary)
        console.print(f"run: {result.run_dir}  (model.safetensors, metrics.jsonl, loss.png, checkpoints/)", markup=False)

    @app.command("import-hf")
    def import_hf_command(
        hf_dir: Path = typer.Argument(..., help="Local Hugging Face BERT folder (config.json, weights, tokenizer)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder to create."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing, non-empty run folder."),
    ) -> None:
        """Turn a local BERT checkpoint into a gristmill run (to continue pretraining or fine-tune)."""
        require_extra("hf", "import-hf", "transformers")
        from gristmill.model.hf import import_hf

        run = import_hf(hf_dir, out, overwrite=overwrite)
        info = read_record(RunFolder(run).import_record)
        if info.get("mlm_head_initialised_randomly"):
            console.print("[yellow]the checkpoint has no MLM head (an encoder only): the head starts random; "
                          "pretrain a little (--init-from) before using fill-mask[/]")
        console.print(f"imported {hf_dir} -> {run}", markup=False)
