"""Command-line verbs for decoder runs: ``generate`` and ``perplexity`` (registered by gristmill.cli).

Each verb parses its options and calls one function (:class:`~gristmill.serve.generate.TextGenerator`,
:func:`~gristmill.serve.perplexity.perplexity`); torch is imported inside the commands. Errors a user
can cause are one line on stderr with exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from gristmill.console import console, fail
from gristmill.data.storage import atomic_write_text
from gristmill.options import COUNT, NON_NEGATIVE, SEED, SEED_HELP, THREADS_HELP, at_least, ranged


def register(app: typer.Typer) -> None:
    """Add the decoder verbs to the main app."""

    @app.command()
    def generate(
        model: Path = typer.Argument(..., help="A decoder run folder (pretrain --arch decoder, or import-hf of a Llama)."),
        prompt: list[str] | None = typer.Option(None, "--prompt", "-p", help="Prompt text (repeat for several)."),
        prompts: Path | None = typer.Option(None, "--prompts", help="JSONL of prompts ({\"prompt\": ...} per line); "
                                            "writes JSONL results to stdout."),
        max_new_tokens: int = typer.Option(64, "--max-new-tokens", "-n", callback=ranged(at_least(0)), help="Tokens to generate at most (0: none)."),
        temperature: float = typer.Option(0.0, "--temperature", "-t", callback=ranged(NON_NEGATIVE), help="0 = greedy; higher = more random."),
        top_k: int = typer.Option(0, "--top-k", callback=ranged(at_least(0)), help="Sample among the k most likely tokens (0 = all)."),
        top_p: float = typer.Option(1.0, "--top-p", help="Sample among the most likely tokens holding this mass."),
        repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="> 1 discourages repeats."),
        stop: list[str] | None = typer.Option(None, "--stop", help="Stop before this string (repeatable)."),
        seed: int = typer.Option(0, "--seed", callback=ranged(SEED), help=SEED_HELP + " Ignored when greedy."),
        batch_size: int = typer.Option(8, "--batch-size", callback=ranged(COUNT), help="Prompts of --prompts generated together."),
        truncate: bool = typer.Option(False, "--truncate", help="Keep the last tokens of a prompt too long for the "
                                      "context (default: error)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Recompute the whole sequence each step (slow)."),
        stream: bool = typer.Option(True, "--stream/--no-stream", help="Print text as it is generated (--prompt)."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
    ) -> None:
        """Generate text from a decoder run: greedy or sampled, with a KV cache, streamed to the terminal."""
        import torch

        from gristmill.serve.generate import Sampling, TextGenerator, read_prompts

        if threads:
            torch.set_num_threads(threads)
        if bool(prompt) == (prompts is not None):
            raise fail("give --prompt TEXT or --prompts FILE.jsonl (one of them)")
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, stop=list(stop or []), seed=seed,
                            truncate=truncate)
        sampling.check()
        generator = TextGenerator.from_run(model)
        if prompts is not None:
            texts = list(read_prompts(prompts))
            for start in range(0, len(texts), batch_size):
                for completion in generator.generate(texts[start:start + batch_size], sampling, not no_cache):
                    sys.stdout.write(json.dumps(completion.to_dict(), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            return
        for text in prompt or []:
            sys.stdout.write(text)
            sys.stdout.flush()

            def show(_row: int, piece: str) -> None:
                sys.stdout.write(piece)
                sys.stdout.flush()

            (completion,) = generator.generate([text], sampling, not no_cache, stream=show if stream else None)
            if not stream:
                sys.stdout.write(completion.text)
            sys.stdout.write("\n")
            sys.stdout.flush()

    @app.command("perplexity")
    def perplexity_command(
        model: Path = typer.Argument(..., help="A decoder run folder."),
        input: Path = typer.Option(..., "--input", "-i", help="JSONL(.gz) documents with a text field."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write per-document scores as JSONL here."),
        text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
        id_field: str = typer.Option("id", "--id-field", help="JSON field holding the document id."),
        batch_size: int = typer.Option(16, "--batch-size", callback=ranged(COUNT), help="Windows per forward pass."),
        stride: int | None = typer.Option(None, "--stride", callback=ranged(COUNT), help="Window step for long documents (default: half the "
                                          "context)."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
    ) -> None:
        """Perplexity of each document and of the whole file under a decoder run (a data-quality score)."""
        import torch

        from gristmill.serve.perplexity import perplexity, read_documents

        if threads:
            torch.set_num_threads(threads)
        documents = list(read_documents(input, text_field, id_field))
        scores, summary = perplexity(model, documents, batch_size, stride)
        lines = "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in scores)
        if out is not None:
            atomic_write_text(out, lines)
        else:
            sys.stdout.write(lines)
        console.print(f"{summary['documents']:,} documents, {summary['tokens']:,} tokens: corpus perplexity "
                      f"{summary['perplexity']:.2f} (NLL {summary['nll_per_token']:.4f} per token)")
