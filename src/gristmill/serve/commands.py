"""Command-line verbs of gristmill.serve: ``predict``, ``fill-mask``, ``export`` and ``serve`` (registered by gristmill.cli).

Each verb parses options, loads a model (:mod:`gristmill.serve.loading`, :mod:`gristmill.serve.fill_mask`),
calls one function of :mod:`gristmill.serve.predict`, :mod:`gristmill.serve.onnx` or
:mod:`gristmill.serve.server`, and prints the result; errors the user can fix become messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from gristmill.console import console, fail, info
from gristmill.data import storage
from gristmill.errors import require_extra
from gristmill.folders import TASK, is_finetuned, is_mlm_run
from gristmill.model.config import is_decoder_run
from gristmill.options import (
    COUNT,
    JSON_HELP,
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    PROGRESS_HELP,
    THREADS_HELP,
    ranged,
)
from gristmill.verbosity import print_json

ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")
"""What ONNX export and the onnx backend import (the ``serve`` extra)."""


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Import heavy modules inside each command."""

    @app.command()
    def predict(
        model: Path = typer.Argument(..., help="FT folder (gristmill finetune --out) or ONNX export folder."),
        input: str = typer.Option(..., "--input", "-i", help="JSONL (.gz/.zst too) with a text field; - for stdin."),
        out: str | None = typer.Option(None, "--out", "-o", help="JSONL to write (.gz to compress); - for stdout."),
        output: str | None = typer.Option(None, "--output", hidden=True, help="Old spelling of --out."),
        backend: Literal["torch", "onnx"] = typer.Option("torch", "--backend", help="The runtime for the model."),
        quantize: Literal["none", "int8"] = typer.Option("none", "--quantize", help="int8: torch: dynamic quantization "
                                                         "in process; onnx: model.int8.onnx."),
        batch_size: int = typer.Option(32, "--batch-size", callback=ranged(COUNT), help="Texts per forward pass."),
        window: int = typer.Option(4096, "--window", callback=ranged(COUNT), help="Lines read, length-sorted and written back at a time."),
        text_field: str | None = typer.Option(None, "--text-field", help="Default: the field the model was tuned on."),
        label_field: str = typer.Option("label", "--label-field", help="Gold label field; when present, accuracy "
                                        "is printed."),
        drop_text: bool = typer.Option(False, "--drop-text", help="Leave the text out of the output records."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
        json_out: bool = typer.Option(False, "--json", help=JSON_HELP + " Needs --out FILE, not -."),
    ) -> None:
        """Predict a label and class probabilities for every line of a JSONL file, streaming.

        Each output line is the input record plus prediction, score and probabilities (token models:
        predicted_tags and tag_scores, one per word); a malformed line gets an output line with an error
        instead (exit status 3).
        """
        from gristmill.serve.loading import load_classifier, load_tagger, task_type_of
        from gristmill.serve.predict import predict_file, predict_tags_file

        output = out or output
        if output is None:
            raise fail("give --out FILE.jsonl (- for stdout)")
        if json_out and output == "-":
            raise fail("--json prints the summary on stdout: write the predictions to a file (--out FILE.jsonl)")
        if backend == "onnx":
            require_extra("serve", "--backend onnx", *ONNX_MODULES)
        _threads(threads)
        if task_type_of(model) == "token" and backend == "torch":
            tagger = load_tagger(model, quantize, batch_size)
            backend_name = "torch-int8" if quantize == "int8" else "torch"
            summary = predict_tags_file(tagger, input, output, window, progress)
        else:
            clf = load_classifier(model, backend, quantize, batch_size, threads, log=info)
            backend_name = clf.backend.name
            summary = predict_file(clf, input, output, text_field, label_field or None, window, progress, drop_text)
        s = summary.as_dict()
        if json_out:
            print_json({"out": output, "backend": backend_name, **s})
            raise typer.Exit(3 if summary.errors else 0)
        rate = f", {s['texts_per_second']:,} texts/s" if s["texts_per_second"] else ""
        info(f"{summary.predicted:,} predicted in {summary.seconds:.1f}s{rate} ({backend_name}, "
             f"{summary.forward_passes:,} forward passes) -> {output}")
        if summary.accuracy is not None:
            unit = "words" if task_type_of(model) == "token" else "lines"
            info(f"accuracy {summary.accuracy:.4f} on {summary.labelled:,} labelled {unit}"
                 + (f" ({summary.unknown_labels:,} had labels the model does not know)" if summary.unknown_labels else ""))
        if summary.errors:
            console.print(f"{summary.errors:,} malformed lines got an error record instead of a prediction; first: "
                          f"{summary.error_examples[0]}", style="yellow", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(3)

    @app.command()
    def export(
        model: Path = typer.Argument(..., help="FT folder (classifier) or, for --format hf, a pretraining RUN folder."),
        format: Literal["onnx", "hf"] = typer.Option(..., "--format", help="onnx, or hf (a transformers folder)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
        quantize: Literal["none", "int8"] = typer.Option("none", "--quantize", help="onnx: also write model.int8.onnx (int8)."),
        eval_file: Path | None = typer.Option(None, "--eval", help="onnx: labelled JSONL to compare accuracies on."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", callback=ranged(COUNT), help="Use only the first N examples of --eval."),
        torch_int8: bool = typer.Option(False, "--torch-int8", help="onnx: also compare PyTorch dynamic int8."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Write into an existing, non-empty folder."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP + " For the parity check."),
    ) -> None:
        """Export a model: ONNX (dynamic batch and sequence axes, optional int8) or a transformers folder."""
        from gristmill.serve.model_card import write_model_card
        from gristmill.serve.onnx import export_hf_classifier, export_onnx

        _threads(threads)
        if format == "hf":
            require_extra("hf", "export --format hf", "transformers")
        else:
            require_extra("serve", "export --format onnx", *ONNX_MODULES)
        storage.check_not_input(out, [model, eval_file])
        storage.check_folder_target(out)
        if out.exists() and storage.has_content(out):
            if not overwrite:
                raise fail(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
            storage.remove_output(out, "export", legacy=("model.onnx", TASK, "export.json"))
        is_classifier = is_finetuned(model)
        if format == "hf":
            if quantize != "none":
                raise fail("--quantize applies to --format onnx only")
            if is_classifier:
                export_hf_classifier(model, out)
                info(f"wrote {out} (BertForSequenceClassification + tokenizer)")
            else:
                from gristmill.model.hf import export_hf

                export_hf(model, out)
                info(f"wrote {out} (BertForMaskedLM + tokenizer)")
            info(f"wrote {write_model_card(model, out, 'BertForSequenceClassification' if is_classifier else 'BertForMaskedLM')}")
            storage.mark_complete(out, "export")
            return
        if not is_classifier:
            raise fail(f"{model} has no task.json: ONNX export takes a fine-tuned classifier (FT folder)")
        report = export_onnx(model, out, quantize=quantize, eval_file=eval_file, eval_limit=eval_limit,
                             torch_int8=torch_int8, threads=threads, log=info)
        storage.mark_complete(out, "export")
        _print_report(report, out)

    @app.command("fill-mask")
    def fill_mask_command(
        model: Path = typer.Argument(..., help="A pretraining run folder (RUN)."),
        text: str = typer.Argument(..., help="Text with one or more [MASK] tokens."),
        top_k: int = typer.Option(5, "--top-k", "-k", callback=ranged(COUNT), help="Predictions shown per [MASK]."),
        as_json: bool = typer.Option(False, "--json", help="Print the JSON of `gristmill serve`'s POST /fill-mask "
                                     "({\"results\": [[{position, candidates: [{token, token_id, score}]}]]})."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
    ) -> None:
        """Print the model's top-k predictions for each [MASK] in the text."""
        from rich.console import Console
        from rich.table import Table

        from gristmill.serve.fill_mask import MaskFiller

        _threads(threads)
        filler = MaskFiller(model)
        problem = filler.check([text])[0]
        if problem:
            raise fail(f"cannot fill the text: {problem}")
        masks = filler.run_batch([(text, top_k)])[0]
        if as_json:
            print_json({"results": [masks]})
            return
        for n, mask in enumerate(masks, 1):
            table = Table(title=f"[MASK] {n}" if len(masks) > 1 else None)
            table.add_column("#", justify="right")
            table.add_column("token")
            table.add_column("probability", justify="right")
            for rank, candidate in enumerate(mask["candidates"], 1):
                table.add_row(str(rank), candidate["token"], f"{candidate['score']:.4f}")
            Console().print(table)

    @app.command()
    def serve(
        model: Path = typer.Argument(..., help="FT folder or ONNX export (POST /predict), or a pretraining RUN "
                                     "folder (POST /fill-mask; a decoder RUN: POST /generate)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default is reachable only "
                                 "from this machine."),
        port: int = typer.Option(8000, "--port", callback=ranged(PORT), help="TCP port to listen on."),
        backend: Literal["torch", "onnx"] = typer.Option("torch", "--backend", help="The runtime for a classifier."),
        quantize: Literal["none", "int8"] = typer.Option("none", "--quantize", help="int8: a dynamically quantized classifier."),
        batch_size: int = typer.Option(32, "--batch-size", callback=ranged(COUNT), help="Texts per forward pass."),
        max_batch: int = typer.Option(64, "--max-batch", callback=ranged(COUNT), help="Texts gathered from concurrent requests per micro-batch."),
        max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", callback=ranged(NON_NEGATIVE), help="How long a request may wait for others to "
                                          "join its batch."),
        max_texts: int = typer.Option(64, "--max-texts", callback=ranged(COUNT), help="Texts per request (more: 413)."),
        max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes", callback=ranged(COUNT), help="Request body size (more: 413)."),
        threads: int | None = typer.Option(None, "--threads", callback=ranged(COUNT), help=THREADS_HELP),
        log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = typer.Option(
            "info", "--log-level", help="uvicorn's log level."),
        token: str | None = typer.Option(None, "--token", envvar="GRISTMILL_TOKEN", show_envvar=True,
                                         help="Require 'Authorization: Bearer TOKEN' (all but GET /health); prefer "
                                         "the environment variable, which `ps` does not show."),
        allowed_host: list[str] | None = typer.Option(None, "--allowed-host", help="Host header names to answer "
                                                      "(repeat; * = any). Default: the loopback names when bound "
                                                      "to a loopback address, else any."),
        max_connections: int | None = typer.Option(None, "--max-connections", callback=ranged(COUNT),
                                                   help="Open connections; more are answered 503 (default: what "
                                                   "the descriptor limit allows, at most 4096)."),
        read_timeout: float = typer.Option(30.0, "--read-timeout", callback=ranged(POSITIVE),
                                           help="Seconds a client may take to send a request's head, and its body."),
        keep_alive: int = typer.Option(5, "--keep-alive", callback=ranged(COUNT),
                                       help="Seconds an idle connection stays open after an answer."),
    ) -> None:
        """Serve a model over HTTP (FastAPI + uvicorn) until SIGTERM or Ctrl-C; OpenAPI schema at /docs."""
        require_extra("serve", "gristmill serve", "fastapi", "uvicorn", "h11", "pydantic")
        from gristmill.serve.fill_mask import MaskFiller
        from gristmill.serve.guard import default_allowed_hosts
        from gristmill.serve.loading import load_classifier
        from gristmill.serve.server import Access, Limits, classifier_engine, fill_mask_engine, run_server

        if backend == "onnx":
            require_extra("serve", "--backend onnx", *ONNX_MODULES)
        _threads(threads)
        if model.is_dir() and is_decoder_run(model):
            from gristmill.serve.generate import TextGenerator
            from gristmill.serve.server import generate_engine

            engine = generate_engine(TextGenerator.from_run(model))
        elif model.is_dir() and is_mlm_run(model):
            if backend != "torch" or quantize != "none":
                raise fail("a masked-LM RUN folder is served with the torch backend, unquantized")
            engine = fill_mask_engine(MaskFiller(model, batch_size))
        else:
            engine = classifier_engine(load_classifier(model, backend, quantize, batch_size, threads, log=info))
        limits = Limits(max_body_bytes=max_body_bytes, max_texts=max_texts, max_batch=max_batch,
                        max_wait_ms=max_wait_ms, read_timeout_s=read_timeout, keep_alive_s=keep_alive,
                        max_connections=max_connections)
        access = Access(token=token or None,
                        allowed_hosts=tuple(allowed_host) if allowed_host else default_allowed_hosts(host))
        info(f"serving {engine.model} ({engine.kind}, {engine.backend}) on http://{host}:{port} "
             f"- docs at /docs, stop with Ctrl-C or SIGTERM")
        run_server(engine, host, port, limits, log_level, access)


def _print_report(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    parity = report.get("parity", {})
    accuracy = report.get("accuracy", {})
    table = Table(title=f"export parity with PyTorch ({report.get('checked_on', {}).get('examples', 0)} texts"
                        f"{', ' + str(report['checked_on']['file']) if report.get('checked_on', {}).get('file') else ''})")
    for col in ("model", "argmax agreement", "max prob diff", "accuracy"):
        table.add_column(col, justify="left" if col == "model" else "right")
    if "torch" in accuracy:
        table.add_row("torch (reference)", "", "", f"{accuracy['torch']:.4f}")
    for name, p in parity.items():
        acc = f"{accuracy[name]:.4f}" if name in accuracy else ""
        table.add_row(name, f"{p['argmax_agreement']:.4f}", f"{p['max_prob_diff']:.2e}", acc)
    Console().print(table)
    info(f"wrote {out} (report: {out / 'export.json'})")
